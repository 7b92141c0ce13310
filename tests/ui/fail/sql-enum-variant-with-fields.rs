use grant::prelude::*;

#[derive(SqlEnum, Clone, Debug)]
pub enum Status {
    Open,
    Closed { reason: String },
}

fn main() {}
