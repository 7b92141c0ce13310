use grant::prelude::*;

#[derive(SqlEnum, Clone, Debug)]
pub enum Status {
    Open,
    #[grant(rename = "Open")]
    Reopened,
    #[grant(label = "x")]
    Closed,
}

fn main() {}
