package meowmxsqlite

// WritersWaiting returns how many of this process's writers wait for their
// turn: tests wait for it instead of sleeping.
func (d *Driver) WritersWaiting() int { return int(d.waiting.Load()) }
