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

// ExampleLoadPolicies prints the policy table a configuration gives, as
// stepup policies --config does, without opening any key or store: the
// service's scope is united with the method's.
func ExampleLoadPolicies() {
	dir, _ := os.MkdirTemp("", "gateway-example")
	defer os.RemoveAll(dir)
	set, _ := gateway.DescriptorSet(relayv1.File_relay_v1_relay_proto)
	_ = os.WriteFile(filepath.Join(dir, "api.binpb"), set, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "gateway.yaml"), []byte(`
insecure_plaintext: true
backend: {address: "127.0.0.1:50051", insecure_plaintext: true}
descriptor_sets: [api.binpb]
policies:
  "relay.v1.RelayService": {scopes: [relay]}
  "/relay.v1.RelayService/Pay": {scopes: [pay], step_up: {factors: [FACTOR_TOTP], max_age: 300s}}
insecure_open_services: [relay.v1.StatsService]
token: {issuer: "https://issuer.example", audience: relay, jwks_url: "https://issuer.example/jwks"}
assertion: {issuer: "https://gateway.example", audience: relay-backend}
`), 0o600)
	table, err := gateway.LoadPolicies(filepath.Join(dir, "gateway.yaml"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range table {
		if r.Method == "/relay.v1.RelayService/Pay" || r.Method == "/relay.v1.StatsService/Stats" {
			fmt.Printf("%s %s %v %v %q\n", r.Method, r.Authentication, r.Scopes, r.Factors, r.MaxAge)
		}
	}
	// Output:
	// /relay.v1.RelayService/Pay DPoP-bound token [relay pay] [totp] "5m0s"
	// /relay.v1.StatsService/Stats none (insecure_no_authentication) [] [] ""
}
