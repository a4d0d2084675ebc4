package jsoncheck

// Case is a document and whether every driver stores it.
type Case struct {
	JSON  string
	Valid bool
	Want  string // part of the error message, for invalid cases
}

// Cases are the edge cases Check is tested on, here and, for PostgreSQL's
// own verdict on each, by the PostgreSQL driver's tests.
var Cases = []Case{
	{`{}`, true, ""},
	{` [1, 2.5, -0, 1e3, 1E+2, 0.5e-3, true, false, null, "x"] `, true, ""},
	{`"caf\u00e9 \ud83d\ude00 \" \\ \/ \b \f \n \r \t"`, true, ""},
	{"\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", true, ""},
	{`{"a":{"b":[{"c":null}]}}`, true, ""},
	{`1e131071`, true, ""},
	{`1.5e131071`, true, ""},
	{`0.1e131072`, true, ""},
	{`1e-16383`, true, ""},
	{`0e-16383`, true, ""},
	{`1.0e-16382`, true, ""},
	{`0.00e131073`, true, ""},
	{`0e20000`, true, ""},
	{``, false, "no JSON value"},
	{`   `, false, "no JSON value"},
	{`{"a":`, false, "end of JSON"},
	{`{"a" 1}`, false, "':'"},
	{`{a:1}`, false, "string key"},
	{`[1,]`, false, "JSON value"},
	{`[1 2]`, false, "after a value"},
	{`01`, false, "after the JSON value"},
	{`1.`, false, "after '.'"},
	{`1e`, false, "exponent"},
	{`+1`, false, "JSON value"},
	{`nul`, false, "null"},
	{`"a` + "\n" + `"`, false, "control character"},
	{`"\x"`, false, "invalid escape"},
	{`"\u12"`, false, "four hex digits"},
	{`"\u0000"`, false, `\u0000`},
	{`{"\u0000":1}`, false, `\u0000`},
	{`"\ud800"`, false, "high surrogate"},
	{`"\ud800x"`, false, "high surrogate"},
	{`"\ud800\u0041"`, false, "high surrogate"},
	{`"\udc00"`, false, "low surrogate"},
	{"\"\xff\"", false, "UTF-8"},
	{"\"\xc3\"", false, "UTF-8"},
	{"\"\xed\xa0\x80\"", false, "UTF-8"}, // a surrogate encoded in UTF-8
	{`1e131072`, false, "before the decimal point"},
	{`10e131071`, false, "before the decimal point"},
	{`1e-16384`, false, "after the decimal point"},
	{`0.0e-16383`, false, "after the decimal point"},
	{`5e-16384`, false, "after the decimal point"},
	{`0e-20000`, false, "after the decimal point"},
	{`1e1000000`, false, "before the decimal point"},
	{`0e1073741822`, true, ""},
	{`0e1073741823`, false, "exponent"},
	{`0e99999999999`, false, "exponent"},
	{`{} {}`, false, "after the JSON value"},
}
