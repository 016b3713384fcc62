// Package bankserver is the in-memory bank behind the example server and the
// demo: a plain gRPC service implementation that knows nothing about
// security. The Stepup interceptors in front of it enforce the policies
// declared in bank.proto, and the handlers read the verified caller from the
// context.
package bankserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	bankv1 "github.com/stepupgrpc/stepup/examples/bank/v1"
	"github.com/stepupgrpc/stepup/interceptor"
)

// Bank is an in-memory BankService. Accounts belong to subjects: a caller
// sees and moves only the accounts of its verified subject.
type Bank struct {
	bankv1.UnimplementedBankServiceServer

	mu       sync.Mutex
	now      func() time.Time
	accounts map[string]*account // by account id
	payees   map[string][]string // subject -> payee IBANs
	seq      int
	subject  func(context.Context) string
}

type account struct {
	owner    string
	currency string
	balance  int64
	history  []*bankv1.Transaction
}

// New returns a bank with no accounts. now is the clock for booking dates.
func New(now func() time.Time) *Bank {
	if now == nil {
		now = time.Now
	}
	return &Bank{now: now, accounts: map[string]*account{}, payees: map[string][]string{}}
}

// Open creates an account for owner with an opening balance.
func (b *Bank) Open(owner, accountID, currency string, balanceMinor int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.accounts[accountID] = &account{owner: owner, currency: currency, balance: balanceMinor}
}

// SetSubject sets how the bank learns who calls: by default the subject the
// Guard verified in this process (interceptor.SubjectFromContext); behind
// stepup-gateway, the subject of the verified identity assertion.
func (b *Bank) SetSubject(subject func(context.Context) string) { b.subject = subject }

func (b *Bank) caller(ctx context.Context) string {
	if b.subject != nil {
		return b.subject(ctx)
	}
	return interceptor.SubjectFromContext(ctx)
}

// Register adds the service to s.
func (b *Bank) Register(s grpc.ServiceRegistrar) { bankv1.RegisterBankServiceServer(s, b) }

// own returns the account if the verified caller owns it.
func (b *Bank) own(ctx context.Context, accountID string) (*account, error) {
	acc, ok := b.accounts[accountID]
	if !ok || acc.owner != b.caller(ctx) {
		return nil, status.Error(codes.NotFound, "no such account")
	}
	return acc, nil
}

// GetBalance returns the caller's balance.
func (b *Bank) GetBalance(ctx context.Context, r *bankv1.GetBalanceRequest) (*bankv1.GetBalanceResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	acc, err := b.own(ctx, r.GetAccountId())
	if err != nil {
		return nil, err
	}
	return &bankv1.GetBalanceResponse{AccountId: r.GetAccountId(), Balance: &bankv1.Money{AmountMinor: acc.balance, Currency: acc.currency}}, nil
}

// Transfer debits the caller's account. Reaching this handler means the
// caller approved exactly this request with a second factor.
func (b *Bank) Transfer(ctx context.Context, r *bankv1.TransferRequest) (*bankv1.TransferResponse, error) {
	if r.GetAmountMinor() <= 0 || r.GetToIban() == "" {
		return nil, status.Error(codes.InvalidArgument, "amount must be positive and to_iban set")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	acc, err := b.own(ctx, r.GetFromAccountId())
	if err != nil {
		return nil, err
	}
	if r.GetCurrency() != acc.currency {
		return nil, status.Errorf(codes.InvalidArgument, "account is in %s", acc.currency)
	}
	if acc.balance < r.GetAmountMinor() {
		return nil, status.Error(codes.FailedPrecondition, "insufficient funds")
	}
	acc.balance -= r.GetAmountMinor()
	b.seq++
	id := fmt.Sprintf("tr-%06d", b.seq)
	acc.history = append(acc.history, &bankv1.Transaction{
		TransactionId: id, Amount: &bankv1.Money{AmountMinor: -r.GetAmountMinor(), Currency: acc.currency},
		CounterpartyIban: r.GetToIban(), BookedAt: timestamppb.New(b.now()), Reference: r.GetReference(),
	})
	return &bankv1.TransferResponse{TransferId: id, BalanceAfter: &bankv1.Money{AmountMinor: acc.balance, Currency: acc.currency}}, nil
}

// AddPayee records a payee for the caller.
func (b *Bank) AddPayee(ctx context.Context, r *bankv1.AddPayeeRequest) (*bankv1.AddPayeeResponse, error) {
	if r.GetName() == "" || r.GetIban() == "" {
		return nil, status.Error(codes.InvalidArgument, "name and iban are required")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sub := b.caller(ctx)
	b.payees[sub] = append(b.payees[sub], r.GetIban())
	b.seq++
	return &bankv1.AddPayeeResponse{PayeeId: fmt.Sprintf("payee-%06d", b.seq)}, nil
}

// Payees returns the IBANs of subject's payees.
func (b *Bank) Payees(subject string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.payees[subject]...)
}

// history returns a copy of the account's transactions.
func (b *Bank) history(ctx context.Context, accountID string) ([]*bankv1.Transaction, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	acc, err := b.own(ctx, accountID)
	if err != nil {
		return nil, err
	}
	return append([]*bankv1.Transaction(nil), acc.history...), nil
}

// WatchTransactions streams the account's transactions booked so far, then
// ends (a real bank would keep the stream open).
func (b *Bank) WatchTransactions(r *bankv1.WatchTransactionsRequest, s grpc.ServerStreamingServer[bankv1.WatchTransactionsResponse]) error {
	txs, err := b.history(s.Context(), r.GetAccountId())
	if err != nil {
		return err
	}
	for _, tx := range txs {
		if err := s.Send(&bankv1.WatchTransactionsResponse{Transaction: tx}); err != nil {
			return err
		}
	}
	return nil
}

// ExportStatements streams the account's statement lines.
func (b *Bank) ExportStatements(r *bankv1.ExportStatementsRequest, s grpc.ServerStreamingServer[bankv1.ExportStatementsResponse]) error {
	txs, err := b.history(s.Context(), r.GetAccountId())
	if err != nil {
		return err
	}
	for _, tx := range txs {
		if err := s.Send(&bankv1.ExportStatementsResponse{Transaction: tx}); err != nil {
			return err
		}
	}
	return nil
}
