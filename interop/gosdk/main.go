// The Cosmos SDK v0.50 Go client, unchanged, against the chain: account number and
// sequence over gRPC, gas from simulation (tx.CalculateGas, gas adjustment 1.0: the
// estimate alone must cover the tx), SIGN_MODE_DIRECT, broadcast over CometBFT RPC, then
// the committed result.
//
//	go run . RPC_URL GRPC_ADDR CHAIN_ID MNEMONIC TO_ADDRESS
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cosmos/cosmos-sdk/client"
	"github.com/cosmos/cosmos-sdk/client/tx"
	"github.com/cosmos/cosmos-sdk/codec"
	codectypes "github.com/cosmos/cosmos-sdk/codec/types"
	cryptocodec "github.com/cosmos/cosmos-sdk/crypto/codec"
	"github.com/cosmos/cosmos-sdk/crypto/hd"
	"github.com/cosmos/cosmos-sdk/crypto/keyring"
	sdk "github.com/cosmos/cosmos-sdk/types"
	"github.com/cosmos/cosmos-sdk/types/tx/signing"
	authtx "github.com/cosmos/cosmos-sdk/x/auth/tx"
	authtypes "github.com/cosmos/cosmos-sdk/x/auth/types"
	banktypes "github.com/cosmos/cosmos-sdk/x/bank/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "go sdk: %s: %v\n", what, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 6 {
		fail("usage", fmt.Errorf("RPC_URL GRPC_ADDR CHAIN_ID MNEMONIC TO_ADDRESS"))
	}
	rpcURL, grpcAddr, chainID, mnemonic, to := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	sdk.GetConfig().SetBech32PrefixForAccount("virtengine", "virtenginepub")

	registry := codectypes.NewInterfaceRegistry()
	cryptocodec.RegisterInterfaces(registry)
	authtypes.RegisterInterfaces(registry)
	banktypes.RegisterInterfaces(registry)
	cdc := codec.NewProtoCodec(registry)
	txConfig := authtx.NewTxConfig(cdc, authtx.DefaultSignModes)

	kr := keyring.NewInMemory(cdc)
	record, err := kr.NewAccount("alice", mnemonic, "", sdk.FullFundraiserPath, hd.Secp256k1)
	if err != nil {
		fail("keyring", err)
	}
	from, err := record.GetAddress()
	if err != nil {
		fail("address", err)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail("gRPC", err)
	}
	rpc, err := rpchttp.New(rpcURL, "/websocket")
	if err != nil {
		fail("RPC", err)
	}
	clientCtx := client.Context{}.
		WithCodec(cdc).WithInterfaceRegistry(registry).WithTxConfig(txConfig).
		WithKeyring(kr).WithGRPCClient(conn).WithClient(rpc).
		WithChainID(chainID).WithFromName("alice").WithFromAddress(from).
		WithAccountRetriever(authtypes.AccountRetriever{}).
		WithBroadcastMode("sync").WithSkipConfirmation(true).
		WithOutput(os.Stderr).WithCmdContext(context.Background())

	toAddr, err := sdk.AccAddressFromBech32(to)
	if err != nil {
		fail("recipient", err)
	}
	msg := banktypes.NewMsgSend(from, toAddr, sdk.NewCoins(sdk.NewInt64Coin("uvirt", 11)))
	factory, err := tx.Factory{}.
		WithTxConfig(txConfig).WithKeybase(kr).WithChainID(chainID).WithFromName("alice").
		WithAccountRetriever(authtypes.AccountRetriever{}).
		WithSimulateAndExecute(true).WithGasAdjustment(1.0).
		WithGasPrices("0.025uvirt").WithSignMode(signing.SignMode_SIGN_MODE_DIRECT).
		Prepare(clientCtx)
	if err != nil {
		fail("account number and sequence over gRPC", err)
	}
	_, gas, err := tx.CalculateGas(clientCtx, factory, msg)
	if err != nil {
		fail("simulate", err)
	}
	fmt.Printf("go sdk: simulated %d gas\n", gas)

	// What tx.BroadcastTx does, keeping the hash to follow the tx.
	factory = factory.WithGas(gas)
	builder, err := factory.BuildUnsignedTx(msg)
	if err != nil {
		fail("build", err)
	}
	if err := tx.Sign(clientCtx.CmdContext, factory, "alice", builder, true); err != nil {
		fail("sign", err)
	}
	txBytes, err := txConfig.TxEncoder()(builder.GetTx())
	if err != nil {
		fail("encode", err)
	}
	res, err := clientCtx.BroadcastTx(txBytes)
	if err != nil || res.Code != 0 {
		fail("broadcast", fmt.Errorf("%v (code %d: %s)", err, res.Code, res.RawLog))
	}
	fmt.Printf("go sdk: broadcast %s\n", res.TxHash)
	hash := make([]byte, 32)
	if _, err := fmt.Sscanf(res.TxHash, "%X", &hash); err != nil {
		fail("tx hash", err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		found, err := rpc.Tx(context.Background(), hash, false)
		if err != nil {
			continue
		}
		r := found.TxResult
		if r.Code != 0 || r.GasUsed > r.GasWanted {
			fail("committed", fmt.Errorf("code %d, gas used %d of %d: %s", r.Code, r.GasUsed, r.GasWanted, r.Log))
		}
		fmt.Printf("go sdk: committed at height %d, gas used %d within the simulated limit %d\n", found.Height, r.GasUsed, r.GasWanted)
		return
	}
	fail("committed", fmt.Errorf("tx %s not in a block within 30 s", res.TxHash))
}
