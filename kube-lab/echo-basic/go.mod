// The upstream conformance suite's echo server (echo-basic), the program the
// lab's pod runner runs for the suite's backend image; its own module so the
// conformance module's pins do not move the Kubernetes build's.
module github.com/embedded-gateway/kube-lab/echo-basic

go 1.26.0

// The conformance module requires a placeholder version of the API module.
replace sigs.k8s.io/gateway-api => sigs.k8s.io/gateway-api v1.6.1

require github.com/miekg/dns v1.1.72

require (
	golang.org/x/mod v0.36.0 // indirect
	golang.org/x/net v0.55.0 // indirect
	golang.org/x/sync v0.20.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
	golang.org/x/text v0.37.0 // indirect
	golang.org/x/tools v0.45.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260427160629-7cedc36a6bc4 // indirect
	google.golang.org/grpc v1.81.1 // indirect
	google.golang.org/protobuf v1.36.12-0.20260120151049-f2248ac996af // indirect
	sigs.k8s.io/gateway-api/conformance v1.6.1 // indirect
)

tool sigs.k8s.io/gateway-api/conformance/echo-basic
