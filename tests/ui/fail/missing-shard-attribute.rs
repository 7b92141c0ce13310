use grant::prelude::*;

#[derive(Sharded)]
pub struct User {
    #[primary_key]
    pub id: i64,
}

fn main() {}
