use grant::prelude::*;

#[derive(Model)]
pub struct Country {
    #[primary_key]
    pub code: Option<String>,
}

fn main() {}
