package fleet

import (
	"testing"

	"github.com/pgnotifier/notifier/internal/clinicdb"
	"github.com/pgnotifier/notifier/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, clinicdb.PrepareURL) }
