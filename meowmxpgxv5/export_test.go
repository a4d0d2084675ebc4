package meowmxpgxv5

import (
	"github.com/meowmx/meowmx/internal/pgdriver"
	"github.com/meowmx/meowmx/meowmxdriver"
)

// PositionFunctions lets tests put the position functions out of step with
// the cluster record.
var PositionFunctions = pgdriver.PositionFunctions

// CopyThreshold is the smallest batch appended with COPY.
var CopyThreshold = pgdriver.CopyThreshold()

// SetCopyThreshold changes it, for a benchmark, and returns the old value.
var SetCopyThreshold = pgdriver.SetCopyThreshold

// ReportClusterChange reports change as the driver does when it handles one.
func (d *Driver) ReportClusterChange(schema string, change *meowmxdriver.ClusterChange) {
	d.core.ReportClusterChange(schema, change)
}
