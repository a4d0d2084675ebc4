// Append to a meowmx stream over HTTP, then follow the log live.
//
// Usage: node client.js BASE_URL STREAM_ID [COUNT]   (after npm run build)
//
// Appends COUNT "Placed" events (default 3) to order-STREAM_ID with
// expected versions, checks that a stale expected version is refused with
// 409 version_conflict, then follows the whole log (Server-Sent Events from
// /events/live) until it has received them, resuming with Last-Event-ID
// if the connection drops, and prints each event as a JSON line. It uses
// Node's fetch and streams only. Set MEOWMX_TOKEN to send a bearer token.

type RecordedEvent = {
  position: string; // "TX/SEQ": a string, as it can exceed Number.MAX_SAFE_INTEGER
  category: string;
  stream_id: string;
  version: number;
  type: string;
  data: unknown;
  metadata: unknown;
  event_id: string;
  recorded_at: string;
  tags?: string[];
};

type ApiError = { error: { code: string; message: string } };

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = process.env.MEOWMX_TOKEN;
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function append(base: string, streamId: string, expected: number | string, type: string, data: unknown): Promise<RecordedEvent> {
  const resp = await fetch(`${base}/streams/order/${encodeURIComponent(streamId)}`, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ expected_version: expected, events: [{ type, data }] }),
  });
  if (resp.status !== 201) {
    const { error } = (await resp.json()) as ApiError;
    throw new Error(`${resp.status} ${error.code}: ${error.message}`);
  }
  const body = (await resp.json()) as { events: RecordedEvent[] };
  return body.events[0];
}

// follow yields [id, event] from the log's live tail, after lastId.
async function* follow(base: string, lastId?: string): AsyncGenerator<[string, RecordedEvent]> {
  const resp = await fetch(`${base}/events/live`, {
    headers: headers(lastId ? { Accept: "text/event-stream", "Last-Event-ID": lastId } : { Accept: "text/event-stream" }),
  });
  if (resp.status !== 200 || !resp.body) {
    const { error } = (await resp.json()) as ApiError;
    throw new Error(`${resp.status} ${error.code}: ${error.message}`);
  }
  const decoder = new TextDecoder();
  let pending = "";
  let id = "";
  let data: string[] = [];
  for await (const chunk of resp.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline).replace(/\r$/, "");
      pending = pending.slice(newline + 1);
      if (line === "") {
        if (data.length > 0) {
          yield [id, JSON.parse(data.join("\n")) as RecordedEvent];
        }
        id = "";
        data = [];
      } else if (line.startsWith("id: ")) {
        id = line.slice(4);
      } else if (line.startsWith("data: ")) {
        data.push(line.slice(6));
      }
    }
  }
}

async function main(): Promise<void> {
  const [base, streamId, countArg] = process.argv.slice(2);
  const count = countArg ? Number(countArg) : 3;
  let expected: number | string = "no_stream";
  const wanted = new Set<string>();
  for (let i = 0; i < count; i++) {
    const recorded = await append(base, streamId, expected, "Placed", { line: i });
    expected = recorded.version;
    wanted.add(recorded.event_id);
  }
  try {
    await append(base, streamId, count > 1 ? 0 : "no_stream", "Late", {});
    throw new Error("a stale expected version was accepted");
  } catch (e) {
    if (!String(e).includes("version_conflict")) throw e;
  }
  let lastId: string | undefined;
  while (wanted.size > 0) {
    try {
      for await (const [id, event] of follow(base, lastId)) {
        lastId = id;
        console.log(JSON.stringify(event));
        wanted.delete(event.event_id);
        if (wanted.size === 0) break;
      }
    } catch (e) {
      if (e instanceof TypeError) continue; // the connection dropped: resume with Last-Event-ID
      throw e;
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
