package gateway_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/stepupgrpc/stepup/gateway"
	relayv1 "github.com/stepupgrpc/stepup/internal/testproto/relay/v1"
)

// Example builds a gateway from a configuration file in front of a backend
// whose protos carry no annotation: the file gives them policies.
func Example() {
	dir, _ := os.MkdirTemp("", "gateway-example")
	defer os.RemoveAll(dir)
	set, _ := gateway.DescriptorSet(relayv1.File_relay_v1_relay_proto) // or: buf build -o api.binpb
	_ = os.WriteFile(filepath.Join(dir, "api.binpb"), set, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(`
listen: "127.0.0.1:8443"
insecure_plaintext: true          # loopback only; use tls: in production
backend: {address: "127.0.0.1:50051", insecure_plaintext: true}
descriptor_sets: [api.binpb]
insecure_open_services: [relay.v1.StatsService]
assertion: {issuer: "https://gateway.example", audience: relay-backend}
`), 0o600)

	gw, err := gateway.Load(filepath.Join(dir, "gateway.yaml"), gateway.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gw.Close()
	open, _ := gw.Guard().Policy("/relay.v1.StatsService/Stats")
	unset, _ := gw.Guard().Policy("/relay.v1.RelayService/Echo")
	fmt.Println("Stats open:", open.NoAuthentication)
	fmt.Println("Echo has a policy:", unset.Defined()) // refused: POLICY_MISSING
	// Serve with gw.Serve(listener); stop with gw.Shutdown(ctx).

	// Output:
	// Stats open: true
	// Echo has a policy: false
}
