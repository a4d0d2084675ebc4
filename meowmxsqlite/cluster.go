package meowmxsqlite

import "github.com/meowmx/meowmx/meowmxdriver"

// OnClusterChange does nothing: an SQLite database is a file, which keeps
// its positions wherever it is copied.
func (d *Driver) OnClusterChange(string, func(*meowmxdriver.ClusterChange)) (stop func()) {
	return func() {}
}
