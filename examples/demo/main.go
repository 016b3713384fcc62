// Command demo shows Stepup end to end in one process.
package main

import (
	"fmt"
	"os"

	"google.golang.org/grpc"

	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
)

func main() {
	guard, err := interceptor.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	bankv1.RegisterBankServiceServer(srv, bankv1.UnimplementedBankServiceServer{})
	report, err := guard.Coverage(srv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print("Effective policies of bank.v1.BankService:\n\n", report)
	if err := guard.CheckCoverage(srv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
