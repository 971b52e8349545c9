// Package upstream runs the upstream conformance suite as it is: every
// option comes from its own flags (run.sh passes them).
package upstream

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}
