//! x/bank: balances, total supply, `MsgSend`, and the fee transfer the ante handler uses.

mod genesis;
mod keeper;
mod msg_server;
mod query;

pub use genesis::{BankGenesis, GenesisBalance, JsonCoin};
pub use keeper::BankKeeper;
pub use msg_server::{handle_send, validate_send};
pub use query::route as route_query;

/// The module account that collects fees.
pub const FEE_COLLECTOR: &str = "fee_collector";
