package meowmxpgxv5

import "github.com/meowmx/meowmx/meowmxdriver"

// PositionFunctions lets tests put the position functions out of step with
// the cluster record.
var PositionFunctions = positionFunctions

// ReportClusterChange reports change as the driver does when it handles one.
func (d *Driver) ReportClusterChange(schema string, change *meowmxdriver.ClusterChange) {
	d.reportClusterChange(schema, change)
}

// CopyThreshold is the smallest batch appended with COPY.
var CopyThreshold = copyThreshold

// SetCopyThreshold changes it, for a benchmark, and returns the old value.
func SetCopyThreshold(n int) int {
	old := copyThreshold
	copyThreshold = n
	return old
}
