// Package meowmxtype holds the values that meowmx and its drivers share: the
// errors, and the types of events, streams and positions. The root package
// meowmx re-exports every one of them, and applications use them from
// there; drivers import this package, so that an error a driver returns
// already matches errors.Is(err, meowmx.ErrX) with no translation between.
//
// It imports nothing of meowmx's, so that every other package can import it.
package meowmxtype
