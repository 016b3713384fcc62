package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/stepupgrpc/stepup/cmd/cli"
	"github.com/stepupgrpc/stepup/gateway"
)

// policyRow is one method of the table.
type policyRow = gateway.PolicyRow

func runPolicies(_ context.Context, e *env, args []string) error {
	fs := cli.NewFlagSet(e.stderr, "stepup policies", "(--config FILE | --descriptors FILE[,FILE...]) [--json]",
		"Prints the effective policy of every method: authentication, scopes (a\n"+
			"method's and its service's, united), step-up factors, max_age, request\n"+
			"binding and the request fields the approval shows, merged by the rules of\n"+
			"docs/POLICY.md. With --config, of a stepup-gateway configuration (its\n"+
			"descriptor sets, policies, insecure_open_services and display): the table\n"+
			"stepup-gateway --check prints. With --descriptors, of descriptor sets (buf\n"+
			"build -o api.binpb) from their annotations alone. A method without a\n"+
			"policy, or whose policies contradict each other, is a problem: the exit\n"+
			"code is then 1.\n")
	config := fs.String("config", "", "a stepup-gateway configuration `file`")
	paths := fs.String("descriptors", "", "comma-separated descriptor set `files`")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	var rows gateway.PolicyTable
	switch {
	case (*config == "") == (*paths == ""):
		return fmt.Errorf("%w: exactly one of --config and --descriptors", cli.ErrUsage)
	case *config != "":
		t, err := gateway.LoadPolicies(*config)
		if err != nil {
			return err
		}
		rows = t
	default:
		files, err := gateway.LoadDescriptorSets(strings.Split(*paths, ",")...)
		if err != nil {
			return err
		}
		rows = gateway.DescriptorPolicies(files)
	}
	if err := cli.WritePolicies(e.stdout, rows, *asJSON); err != nil {
		return err
	}
	if n := rows.Problems(); n > 0 {
		fmt.Fprintf(e.stderr, "%d method(s) with a problem\n", n)
		return cli.ErrReported
	}
	return nil
}
