package meowmxhttp

import (
	"fmt"
	"net/http"
	"time"

	"github.com/meowmx/meowmx"
)

// partitionStatus is one partition of a subscription.
type partitionStatus struct {
	Name       string   `json:"name"`
	Partition  int      `json:"partition"`
	Partitions int      `json:"partitions"`
	Categories []string `json:"categories"`
	Types      []string `json:"types"`
	Checkpoint string   `json:"checkpoint"`
	// Lag is the number of events after the checkpoint, counted up to
	// meowmx.LagLimitDefault: at least that many when LagCapped.
	Lag       int64 `json:"lag"`
	LagCapped bool  `json:"lag_capped"`
	// SecondsBehind is how old the oldest unhandled event is.
	SecondsBehind float64  `json:"seconds_behind"`
	Owner         string   `json:"owner,omitempty"`
	LeaseUntil    *string  `json:"lease_until"`
	Parked        int64    `json:"parked"`
	UpdatedAt     string   `json:"updated_at"`
	HorizonHeld   bool     `json:"horizon_held"`
	Horizon       *horizon `json:"horizon,omitempty"`
}

// horizon is the transaction holding the visibility horizon back.
type horizon struct {
	PID           int     `json:"pid"`
	TransactionID uint64  `json:"transaction_id"`
	AgeSeconds    float64 `json:"age_seconds"`
	Database      string  `json:"database"`
	State         string  `json:"state"`
	Query         string  `json:"query,omitempty"`
}

// horizonOf describes h; withQuery says whether to name its query, the
// SQL of another session, which read-only tokens are not shown.
func horizonOf(h *meowmx.Horizon, withQuery bool) *horizon {
	if h == nil {
		return nil
	}
	out := &horizon{PID: h.PID, TransactionID: h.TransactionID, AgeSeconds: h.Age.Seconds(),
		Database: h.Database, State: h.State}
	if withQuery {
		out.Query = h.Query
	}
	return out
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func statusesOf(sts []meowmx.SubscriptionStatus, withQuery bool) []partitionStatus {
	out := make([]partitionStatus, len(sts))
	for i, s := range sts {
		out[i] = partitionStatus{
			Name: s.Name, Partition: s.Partition, Partitions: s.Partitions,
			Categories: nonNilStrings(s.Categories), Types: nonNilStrings(s.Types),
			Checkpoint: s.Checkpoint.String(), Lag: s.Lag, LagCapped: s.LagCapped, SecondsBehind: s.TimeBehind.Seconds(),
			Owner: s.Owner, Parked: s.Parked, UpdatedAt: formatTime(s.UpdatedAt),
			HorizonHeld: s.HorizonHeld, Horizon: horizonOf(s.Horizon, withQuery),
		}
		if !s.LeaseUntil.IsZero() {
			until := formatTime(s.LeaseUntil)
			out[i].LeaseUntil = &until
		}
	}
	return out
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// subscriptions lists every subscription's partitions: GET /subscriptions.
func (h *Handler[TTx]) subscriptions(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	sts, err := h.store.SubscriptionStatusesLimit(r.Context(), "", meowmx.LagLimitDefault)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"partitions": statusesOf(sts, !readOnly(r))})
}

// subscription is one subscription's partitions: GET /subscriptions/{name}.
func (h *Handler[TTx]) subscription(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	name := r.PathValue("name")
	sts, err := h.store.SubscriptionStatusesLimit(r.Context(), name, meowmx.LagLimitDefault)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(sts) == 0 {
		h.fail(w, r, fmt.Errorf("%w: %s", meowmx.ErrSubscriptionNotFound, name))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"partitions": statusesOf(sts, !readOnly(r))})
}

// resetIn is the body of a reset: to is "start", "end" or a position.
type resetIn struct {
	To string `json:"to"`
}

// resetSubscription moves a subscription's checkpoints: POST
// /subscriptions/{name}/reset {"to":"start"|"end"|"TX/SEQ"}.
func (h *Handler[TTx]) resetSubscription(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	name := r.PathValue("name")
	var in resetIn
	if err := decodeBody(r, &in); err != nil {
		h.fail(w, r, err)
		return
	}
	var from meowmx.SubscriptionFrom
	switch in.To {
	case "start":
		from = meowmx.FromStart
	case "end":
		from = meowmx.FromEnd
	case "":
		h.fail(w, r, badRequest(`to: want "start", "end" or a position`))
		return
	default:
		p, err := parsePosition(in.To)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		from = meowmx.FromPosition(p)
	}
	if err := h.store.ResetSubscription(r.Context(), name, from); err != nil {
		h.fail(w, r, err)
		return
	}
	sts, err := h.store.SubscriptionStatusesLimit(r.Context(), name, meowmx.LagLimitDefault)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"partitions": statusesOf(sts, !readOnly(r))})
}

// parked lists a subscription's parked events: GET /subscriptions/{name}/parked.
func (h *Handler[TTx]) parked(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	name := r.PathValue("name")
	if err := h.exists(r, name); err != nil {
		h.fail(w, r, err)
		return
	}
	parked, err := h.store.ParkedEvents(r.Context(), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if parked == nil {
		parked = []meowmx.ParkedEvent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"parked": parked})
}

// replay asks for a subscription's parked events to be handled again:
// POST /subscriptions/{name}/replay.
func (h *Handler[TTx]) replay(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	name := r.PathValue("name")
	if err := h.exists(r, name); err != nil {
		h.fail(w, r, err)
		return
	}
	n, err := h.store.ReplayParked(r.Context(), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"replaying": n})
}

// exists fails with ErrSubscriptionNotFound for a subscription with no
// partitions.
func (h *Handler[TTx]) exists(r *http.Request, name string) error {
	sts, err := h.store.SubscriptionStatusesLimit(r.Context(), name, meowmx.LagLimitDefault)
	if err != nil {
		return err
	}
	if len(sts) == 0 {
		return fmt.Errorf("%w: %s", meowmx.ErrSubscriptionNotFound, name)
	}
	return nil
}

// horizon names the transaction holding global readers back, or null:
// GET /horizon.
func (h *Handler[TTx]) horizon(w http.ResponseWriter, r *http.Request) {
	h.deadline(w)
	hz, err := h.store.Horizon(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"horizon": horizonOf(hz, !readOnly(r))})
}
