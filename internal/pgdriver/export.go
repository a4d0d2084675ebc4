package pgdriver

import "github.com/meowmx/meowmx/meowmxdriver"

// MapError turns PostgreSQL errors into meowmxtype's errors, keeping the
// original in the chain.
func MapError(err error) error { return mapError(err) }

// PositionFunctions renders the schema's position functions with offset
// added, for tests that put them out of step with the cluster record.
func PositionFunctions(ident string, offset int64) string { return positionFunctions(ident, offset) }

// ReportClusterChange reports change as the driver does when it handles
// one, for tests.
func (d *Driver) ReportClusterChange(schema string, change *meowmxdriver.ClusterChange) {
	d.reportClusterChange(schema, change)
}

// CopyThreshold returns the smallest batch appended with COPY.
func CopyThreshold() int { return copyThreshold }

// SetCopyThreshold changes it, for a benchmark, and returns the old value.
func SetCopyThreshold(n int) int {
	old := copyThreshold
	copyThreshold = n
	return old
}

// AsynchronousCommitSQL makes a transaction's commit not wait for the WAL
// flush: a crash can lose the last such commits, all of whose writes then
// vanish together.
const AsynchronousCommitSQL = "SET LOCAL synchronous_commit = off"
