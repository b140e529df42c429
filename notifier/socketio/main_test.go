package socketio_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a session loop, feeder or reader outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
