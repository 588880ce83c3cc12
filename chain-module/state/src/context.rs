use crate::events::Event;
use crate::gas::GasMeter;

/// Facts about the block being executed, all taken from the block header so every node
/// sees the same values (never the local clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub chain_id: String,
    pub height: u64,
    /// Block time from the header: seconds and nanoseconds since the Unix epoch.
    pub time_seconds: i64,
    pub time_nanos: i32,
}

/// What a message handler may use besides state: the block, the gas meter and the event
/// sink.
pub struct ExecCtx<'a> {
    pub block: &'a BlockInfo,
    pub meter: &'a GasMeter,
    pub events: Vec<Event>,
}

impl<'a> ExecCtx<'a> {
    pub fn new(block: &'a BlockInfo, meter: &'a GasMeter) -> Self {
        Self {
            block,
            meter,
            events: Vec::new(),
        }
    }

    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }
}
