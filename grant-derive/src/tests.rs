//! Unit tests of the expansion and the error messages, without a compiler run.

use proc_macro2::TokenStream;
use quote::quote;

use crate::{Derive, derive_model_inner, derive_sharded_inner, run};

/// The expansion as a string with tokens separated by single spaces, after checking it parses as
/// Rust items.
fn expand(kind: Derive, input: TokenStream) -> String {
    let output = match kind {
        Derive::Sharded => derive_sharded_inner(input),
        Derive::Model => derive_model_inner(input),
    };
    if let Err(error) = syn::parse2::<syn::File>(output.clone()) {
        panic!("expansion does not parse: {error}\n{output}");
    }
    output.to_string()
}

/// The messages of every error the derive reports.
fn errors(kind: Derive, input: TokenStream) -> Vec<String> {
    match run(input, kind) {
        Ok(_) => Vec::new(),
        Err((error, _)) => error.into_iter().map(|e| e.to_string()).collect(),
    }
}

/// The single error the derive reports.
fn error(kind: Derive, input: TokenStream) -> String {
    let all = errors(kind, input);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.into_iter().next().unwrap_or_default()
}

fn contains_all(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "expansion lacks `{needle}`:\n{haystack}"
        );
    }
}

fn user() -> TokenStream {
    quote! {
        #[grant(table = "users")]
        #[shard(strategy = "hash", on = "id", count = 8)]
        pub struct User {
            #[primary_key]
            pub id: i64,
            pub name: String,
            pub email: Option<String>,
        }
    }
}

#[test]
fn sharded_user_expansion() {
    let out = expand(Derive::Sharded, user());
    contains_all(
        &out,
        &[
            "const _ : () = {",
            "# [automatically_derived]",
            "impl :: grant :: __private :: Model for User",
            "i64 : :: grant :: __private :: SqlType",
            "Option < String > : :: grant :: __private :: SqlType",
            "type PrimaryKey = i64 ;",
            "name : \"User\" , table : \"users\"",
            "name : \"id\" , field : \"id\" , primary_key : true , nullable : < i64 as :: grant :: __private :: SqlType > :: NULLABLE , column_type : < i64 as :: grant :: __private :: SqlType > :: column_type",
            "primary_key : & [0]",
            "shard_key : :: core :: option :: Option :: Some (0)",
            "static SHARDS : [:: grant :: __private :: ShardId ; 8]",
            ":: grant :: __private :: ShardId :: prefixed (\"shard_\" , index)",
            "fn shard_of_key (key : & Self :: PrimaryKey) -> :: grant :: __private :: ShardId { :: grant :: __private :: ShardId :: prefixed (\"shard_\" , :: grant :: __private :: hash :: shard_index (key , 8u32)) }",
            "fn shard_of (& self) -> :: grant :: __private :: ShardId { :: grant :: __private :: ShardId :: prefixed (\"shard_\" , :: grant :: __private :: hash :: shard_index (& self . id , 8u32)) }",
            "fn shard_for (key : & Self :: ShardKey) -> :: grant :: __private :: ShardId { :: grant :: __private :: ShardId :: prefixed (\"shard_\" , :: grant :: __private :: hash :: shard_index (key , 8u32)) }",
            ":: grant :: __private :: hash :: route_value :: < Self > (value , 8u32)",
            "2 => :: core :: convert :: Into :: < :: grant :: __private :: sea_query :: Value > :: into (:: core :: clone :: Clone :: clone (& self . email)) ,",
            "_ => :: grant :: __private :: sea_query :: Value :: Bool (:: core :: option :: Option :: None)",
            // The `Model` impl carries the bounds checked at the field types ...
            "Option < String > : :: grant :: __private :: SqlType",
            ", i64 : :: grant :: __private :: ShardKey , { type PrimaryKey",
            // ... the impls depending on it restate them without a second check.
            "impl :: grant :: __private :: Sharded for User where for < '__grant > Self : :: grant :: __private :: Model , for < '__grant > i64 : :: grant :: __private :: ShardKey ,",
            "impl User where for < '__grant > Self : :: grant :: __private :: Model , for < '__grant > i64 : :: grant :: __private :: ShardKey {",
            "type ShardKey = i64 ;",
            ":: grant :: __private :: hash :: shard_index (key , 8u32)",
            "impl < __DB : :: grant :: __private :: Backend > :: grant :: __private :: FromShardRow < __DB > for User",
            "FromShardRow < __DB > for User where i64 : :: grant :: __private :: SqlType",
            "email : < __DB as :: grant :: __private :: Backend > :: get_column :: < Option < String > > (row , offset + 2) ?",
            "pub const ID : :: grant :: __private :: Column < Self , i64 , :: grant :: __private :: KeyColumn > = :: grant :: __private :: Column :: new (\"id\" , 0) ;",
            "pub const EMAIL : :: grant :: __private :: Column < Self , Option < String > , :: grant :: __private :: DataColumn >",
            "pub fn shard_for (key : & i64) -> :: grant :: __private :: ShardId { :: grant :: __private :: ShardId :: prefixed (\"shard_\" , :: grant :: __private :: hash :: shard_index (key , 8u32)) }",
            "pub async fn create_table < DB : :: grant :: __private :: Backend >",
            ":: grant :: __private :: crud :: create_table :: < Self , DB > (cluster) . await",
            ":: grant :: __private :: crud :: insert (cluster , self) . await",
            ":: grant :: __private :: crud :: insert_many (cluster , rows) . await",
            ":: grant :: __private :: crud :: update (cluster , self) . await",
            ":: grant :: __private :: crud :: delete (cluster , self) . await",
            ":: grant :: __private :: crud :: find (cluster , key) . await",
            ":: grant :: __private :: crud :: find_tracked (cluster , key) . await",
            "pub fn query () -> :: grant :: __private :: Query < Self > { :: grant :: __private :: Query :: auto () }",
            ":: grant :: __private :: Query :: on_shard (shard)",
            ":: grant :: __private :: Query :: on_all_shards ()",
        ],
    );
    assert!(!out.contains("compile_error"), "{out}");
    assert!(!out.contains("unreachable"), "{out}");
}

#[test]
fn every_generated_pub_item_has_docs() {
    let out = expand(Derive::Sharded, user());
    let items = out.matches("pub const ").count()
        + out.matches("pub fn ").count()
        + out.matches("pub async fn ").count();
    // 3 constants, shard_for, try_shard_for, 9 async fns, query, on_shard, on_all_shards.
    assert_eq!(items, 3 + 2 + 9 + 3, "{out}");
    let docs = out.matches("# [doc = ").count();
    assert!(docs >= items, "{docs} docs for {items} items:\n{out}");
}

#[test]
fn composite_primary_key_is_a_tuple_in_field_order() {
    let out = expand(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "hash", on = "order_id", count = 4)]
            pub struct OrderItem {
                #[primary_key] pub order_id: i64,
                #[primary_key] pub product_id: i32,
                pub quantity: i32,
            }
        },
    );
    contains_all(
        &out,
        &[
            "table : \"order_item\"",
            "type PrimaryKey = (i64 , i32 ,) ;",
            "(:: core :: clone :: Clone :: clone (& self . order_id) , :: core :: clone :: Clone :: clone (& self . product_id) ,)",
            "primary_key : & [0 , 1]",
            "shard_key : :: core :: option :: Option :: Some (0)",
            ":: core :: clone :: Clone :: clone (& key . 0)",
            ":: core :: clone :: Clone :: clone (& key . 1)",
            "fn shard_of_key (key : & Self :: PrimaryKey) -> :: grant :: __private :: ShardId { :: grant :: __private :: ShardId :: prefixed (\"shard_\" , :: grant :: __private :: hash :: shard_index (& key . 0 , 4u32)) }",
            "hash :: shard_index (key , 4u32)",
        ],
    );
}

#[test]
fn shard_key_position_within_a_composite_key() {
    let out = expand(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "hash", on = "tenant", count = 2, prefix = "t")]
            struct Doc {
                #[primary_key] id: i64,
                body: String,
                #[primary_key] tenant: String,
            }
        },
    );
    contains_all(
        &out,
        &[
            "type PrimaryKey = (i64 , String ,) ;",
            "primary_key : & [0 , 2]",
            "shard_key : :: core :: option :: Option :: Some (2)",
            "shard_index (& key . 1 , 2u32)",
            "ShardId :: prefixed (\"t\" , index)",
            // A private struct gets private items.
            " const ID :",
            " fn shard_for (key : & String)",
        ],
    );
    assert!(!out.contains("pub "), "{out}");
}

#[test]
fn renamed_table_and_column_and_raw_identifiers() {
    let out = expand(
        Derive::Sharded,
        quote! {
            #[grant(table = "accounts")]
            #[shard(strategy = "hash", on = "r#type", count = 2)]
            pub(crate) struct r#Account {
                #[primary_key]
                r#type: String,
                #[grant(column = "display_name")]
                userName: String,
            }
        },
    );
    contains_all(
        &out,
        &[
            "name : \"Account\" , table : \"accounts\"",
            "name : \"type\" , field : \"type\"",
            "name : \"display_name\" , field : \"userName\"",
            "pub (crate) const TYPE : :: grant :: __private :: Column < Self , String , :: grant :: __private :: KeyColumn > = :: grant :: __private :: Column :: new (\"type\" , 0)",
            "pub (crate) const USER_NAME : :: grant :: __private :: Column < Self , String , :: grant :: __private :: DataColumn > = :: grant :: __private :: Column :: new (\"display_name\" , 1)",
            "& self . r#type",
            "pub (crate) async fn find",
        ],
    );
}

#[test]
fn model_derive_lives_on_one_shard() {
    let out = expand(
        Derive::Model,
        quote! {
            #[grant(table = "countries", shard = "ref")]
            pub struct Country {
                #[primary_key]
                pub code: String,
                pub name: String,
            }
        },
    );
    contains_all(
        &out,
        &[
            "impl :: grant :: __private :: Model for Country",
            "shard_key : :: core :: option :: Option :: None",
            "static SHARDS : [:: grant :: __private :: ShardId ; 1] = [:: grant :: __private :: ShardId :: named (0 , \"ref\")]",
            ":: core :: result :: Result :: Ok (:: grant :: __private :: ShardId :: named (0 , \"ref\"))",
            "pub async fn find <",
        ],
    );
    assert!(!out.contains("Sharded"), "{out}");
    assert!(!out.contains("fn shard_for ("), "{out}");
    assert!(!out.contains("ShardKey"), "{out}");

    let out = expand(
        Derive::Model,
        quote! { struct Setting { #[primary_key] key: String } },
    );
    contains_all(
        &out,
        &["table : \"setting\"", "ShardId :: named (0 , \"shard_0\")"],
    );
}

#[test]
fn reference_model_writes_every_shard() {
    let out = expand(
        Derive::Model,
        quote! {
            #[grant(table = "currencies", reference)]
            pub struct Currency {
                #[primary_key]
                pub code: String,
                pub digits: i32,
            }
        },
    );
    contains_all(
        &out,
        &[
            "const REFERENCE : bool = true ;",
            ":: grant :: __private :: txn :: create_table :: < Self , DB > (cluster)",
            ":: grant :: __private :: txn :: insert (cluster , self)",
            ":: grant :: __private :: txn :: insert_many (cluster , rows)",
            ":: grant :: __private :: txn :: update (cluster , self)",
            ":: grant :: __private :: txn :: delete (cluster , self)",
            // Reads stay on one shard.
            ":: grant :: __private :: crud :: find (cluster , key)",
            "ShardId :: named (0 , \"shard_0\")",
        ],
    );
    // Without the flag: no REFERENCE, writes through crud.
    let out = expand(
        Derive::Model,
        quote! { struct Setting { #[primary_key] key: String } },
    );
    assert!(!out.contains("REFERENCE"), "{out}");
    assert!(!out.contains(":: txn ::"), "{out}");
}

#[test]
fn reference_is_only_for_model_and_takes_no_value() {
    let message = error(
        Derive::Sharded,
        quote! {
            #[grant(reference)]
            #[shard(strategy = "hash", on = "id", count = 4)]
            pub struct User { #[primary_key] pub id: i64 }
        },
    );
    assert!(
        message.contains("`#[grant(reference)]` is only for `#[derive(Model)]`"),
        "{message}"
    );
    let message = error(
        Derive::Model,
        quote! {
            #[grant(reference = true)]
            pub struct Currency { #[primary_key] pub code: String }
        },
    );
    assert!(message.contains("takes no value"), "{message}");
    let message = error(
        Derive::Model,
        quote! {
            #[grant(reference, reference)]
            pub struct Currency { #[primary_key] pub code: String }
        },
    );
    assert!(message.contains("duplicate `reference`"), "{message}");
}

#[test]
fn errors_come_with_placeholder_impls() {
    let input = quote! {
        #[shard(strategy = "hash", on = "idd", count = 8)]
        pub struct User { #[primary_key] pub id: i64, pub name: String }
    };
    let out = expand(Derive::Sharded, input);
    contains_all(
        &out,
        &[
            ":: core :: compile_error !",
            "impl :: grant :: __private :: Model for User",
            "impl < __DB : :: grant :: __private :: Backend > :: grant :: __private :: FromShardRow < __DB > for User",
            "pub const ID : :: grant :: __private :: Column < Self , i64 , :: grant :: __private :: KeyColumn >",
            "pub fn shard_for < K : ? :: core :: marker :: Sized > (key : & K)",
            "pub async fn find",
            ":: core :: unreachable ! ()",
        ],
    );
    assert!(!out.contains("crud"), "{out}");
    // No bounds in placeholders: they must not add errors of their own.
    assert!(!out.contains("SqlType"), "{out}");
}

#[test]
fn placeholder_sharded_impl_when_the_key_is_known() {
    let out = expand(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "hash", on = "id", count = 0)]
            pub struct User { #[primary_key] pub id: i64 }
        },
    );
    contains_all(
        &out,
        &[
            "impl :: grant :: __private :: Sharded for User { type ShardKey = i64 ;",
            "pub fn shard_for (key : & i64)",
        ],
    );
}

#[test]
fn generic_items_get_no_placeholders() {
    let out = expand(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "hash", on = "id", count = 2)]
            struct User<T> { #[primary_key] id: i64, data: T }
        },
    );
    assert!(out.contains("compile_error"), "{out}");
    assert!(!out.contains("impl"), "{out}");
}

#[test]
fn unparsable_input_is_an_error_not_a_panic() {
    let out = derive_sharded_inner(quote!(
        fn not_a_struct() {}
    ));
    assert!(out.to_string().contains("compile_error"), "{out}");
}

// ---- error messages ----

#[test]
fn missing_shard_attribute() {
    assert_eq!(
        error(
            Derive::Sharded,
            quote!(
                struct User {
                    #[primary_key]
                    id: i64,
                }
            )
        ),
        "`#[derive(Sharded)]` needs a `#[shard(strategy = \"hash\", on = \"<field>\", count = \
         <shards>)]` attribute on `User`; for a table on one shard, derive `Model` instead"
    );
}

#[test]
fn shard_key_names_no_field() {
    let input = |on: &str| {
        quote! {
            #[shard(strategy = "hash", on = #on, count = 8)]
            struct User { #[primary_key] id: i64, name: String, #[grant(column = "user_region")] region: String }
        }
    };
    assert_eq!(
        error(Derive::Sharded, input("idd")),
        "`#[shard(on = \"idd\")]` names no field of `User`; did you mean `id`?"
    );
    assert_eq!(
        error(Derive::Sharded, input("balance")),
        "`#[shard(on = \"balance\")]` names no field of `User`; expected one of `id`, `name`, `region`"
    );
    assert_eq!(
        error(Derive::Sharded, input("user_region")),
        "`#[shard(on = \"user_region\")]` names no field of `User`; `on` takes the field name, not \
         the column name: did you mean `region`?"
    );
}

#[test]
fn shard_key_is_option() {
    let all = errors(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "hash", on = "id", count = 8)]
            struct User { #[primary_key] id: Option<i64> }
        },
    );
    assert_eq!(
        all,
        ["shard key `id` cannot be an `Option`: shard keys are never NULL; use the inner type"]
    );
    let all = errors(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "hash", on = "id", count = 8)]
            struct User { #[primary_key] id: ::core::option::Option<i64> }
        },
    );
    assert_eq!(all.len(), 1, "{all:?}");
}

#[test]
fn shard_key_outside_primary_key() {
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = "region", count = 8)]
                struct User { #[primary_key] id: i64, region: String }
            }
        ),
        "shard key `region` is not part of the primary key of `User`; mark it `#[primary_key]` \
         too (a composite key is fine) so that a primary key always names one shard"
    );
}

#[test]
fn no_primary_key() {
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = "id", count = 8)]
                struct User { id: i64 }
            }
        ),
        "`User` has no primary key; mark the field(s) that identify a row with `#[primary_key]`"
    );
    assert_eq!(
        error(
            Derive::Model,
            quote!(
                struct Country {
                    code: String,
                }
            )
        ),
        "`Country` has no primary key; mark the field(s) that identify a row with `#[primary_key]`"
    );
}

#[test]
fn nullable_primary_key() {
    assert_eq!(
        error(
            Derive::Model,
            quote!(
                struct Country {
                    #[primary_key]
                    code: Option<String>,
                }
            )
        ),
        "primary-key field `code` cannot be an `Option`: primary-key columns are never NULL; use \
         the inner type"
    );
}

#[test]
fn unknown_strategy() {
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hsh", on = "id", count = 8)]
                struct User { #[primary_key] id: i64 }
            }
        ),
        "unknown strategy `hsh`, expected one of `hash`, `pg_hash`, `consistent_hash`, `range`, `mapping`, `geographic`, `lookup`, `directory`, `custom`"
    );
}

#[test]
fn bad_counts() {
    let input = |count: TokenStream| {
        quote! {
            #[shard(strategy = "hash", on = "id", count = #count)]
            struct User { #[primary_key] id: i64 }
        }
    };
    assert_eq!(
        error(Derive::Sharded, input(quote!(0))),
        "`#[shard(count = ...)]` must be at least 1, got 0"
    );
    assert_eq!(
        error(Derive::Sharded, input(quote!(100000))),
        "`#[shard(count = ...)]` must be at most 65536, got 100000"
    );
    assert_eq!(
        error(Derive::Sharded, input(quote!(99999999999999999999999))),
        "`#[shard(count = ...)]` must be at most 65536, got 99999999999999999999999"
    );
    assert_eq!(
        error(Derive::Sharded, input(quote!("8"))),
        "`#[shard(count = ...)]` expects an integer literal, e.g. `count = 8`"
    );
    assert_eq!(
        error(Derive::Sharded, input(quote!(-1))),
        "`#[shard(count = ...)]` expects an integer literal, e.g. `count = 8`"
    );
    assert!(errors(Derive::Sharded, input(quote!(65536))).is_empty());
    assert!(errors(Derive::Sharded, input(quote!(1u32))).is_empty());
}

#[test]
fn unknown_keys() {
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = "id", count = 8, shards = 3)]
                struct User { #[primary_key] id: i64 }
            }
        ),
        "unknown key `shards` in `#[shard(..)]`, expected one of `strategy`, `on`, `count`, `prefix`, `vnodes`, `weights`, `ranges`, `map`, `default`, `home`, `policy`, `resolver`"
    );
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[grant(tabel = "users")]
                #[shard(strategy = "hash", on = "id", count = 8)]
                struct User { #[primary_key] id: i64 }
            }
        ),
        "unknown key `tabel` in `#[grant(..)]` on a struct, expected one of `table`, `crate`, `methods`, `index`, `unique`, `belongs_to`"
    );
    assert_eq!(
        error(
            Derive::Model,
            quote! {
                #[grant(column = "x")]
                struct Country { #[primary_key] code: String }
            }
        ),
        "unknown key `column` in `#[grant(..)]` on a struct, expected one of `table`, `shard`, `reference`, `crate`, `methods`, `index`, `unique`; \
         `column` goes on a field"
    );
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = "id", count = 8)]
                struct User { #[primary_key] id: i64, #[grant(rename = "x")] name: String }
            }
        ),
        "unknown key `rename` in field attribute `#[grant(..)]`, expected one of `column`, `constant`, `index`, `unique`"
    );
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[grant(shard = "shard_1")]
                #[shard(strategy = "hash", on = "id", count = 8)]
                struct User { #[primary_key] id: i64 }
            }
        ),
        "`#[grant(shard = ...)]` is only for `#[derive(Model)]`; the shards of a \
         `#[derive(Sharded)]` model come from `#[shard(..)]`"
    );
}

#[test]
fn duplicate_keys() {
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = "id", count = 8, count = 4)]
                struct User { #[primary_key] id: i64 }
            }
        ),
        "duplicate key `count` in `#[shard(..)]`"
    );
    // Across two attributes as well.
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = "id", count = 8)]
                #[shard(on = "id")]
                struct User { #[primary_key] id: i64 }
            }
        ),
        "duplicate key `on` in `#[shard(..)]`"
    );
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = "id", count = 8)]
                struct User { #[primary_key] #[primary_key] id: i64 }
            }
        ),
        "duplicate `#[primary_key]` on this field"
    );
}

#[test]
fn missing_keys_are_reported_together() {
    assert_eq!(
        errors(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash")]
                struct User { #[primary_key] id: i64 }
            }
        ),
        [
            "`#[shard(..)]` is missing `on = \"<field>\"`, the field whose value picks the shard",
            "`#[shard(..)]` is missing `count = <shards>`, the number of shards",
        ]
    );
    assert_eq!(
        errors(
            Derive::Sharded,
            quote! {
                #[shard(on = "id", count = 2)]
                struct User { #[primary_key] id: i64 }
            }
        ),
        [
            "`#[shard(..)]` is missing `strategy = \"...\"`, one of `hash`, `pg_hash`, `consistent_hash`, `range`, `mapping`, `geographic`, `lookup`, `directory`, `custom`"
        ]
    );
}

#[test]
fn syntax_errors_in_attributes_do_not_add_missing_key_errors() {
    let all = errors(
        Derive::Sharded,
        quote! {
            #[shard(strategy "hash", on = "id", count = 2)]
            struct User { #[primary_key] id: i64 }
        },
    );
    assert_eq!(all, ["expected `strategy = \"hash\"` in `#[shard(..)]`"]);
    let all = errors(
        Derive::Sharded,
        quote! {
            #[shard]
            struct User { #[primary_key] id: i64 }
        },
    );
    assert_eq!(all.len(), 1, "{all:?}");
}

#[test]
fn wrong_shapes() {
    assert_eq!(
        error(
            Derive::Sharded,
            quote!(
                enum User {
                    A,
                    B,
                }
            )
        ),
        "`#[derive(Sharded)]` only supports structs with named fields, not enums"
    );
    assert_eq!(
        error(
            Derive::Sharded,
            quote!(
                struct User(i64, String);
            )
        ),
        "`#[derive(Sharded)]` needs a struct with named fields, one per column; tuple structs are \
         not supported"
    );
    assert_eq!(
        error(
            Derive::Model,
            quote!(
                struct Unit;
            )
        ),
        "`#[derive(Model)]` needs a struct with named fields, one per column; `Unit` has none"
    );
    assert_eq!(
        error(Derive::Model, quote!(union U { a: i64 })),
        "`#[derive(Model)]` only supports structs with named fields, not unions"
    );
    assert_eq!(
        error(
            Derive::Model,
            quote!(
                struct Country<'a> {
                    #[primary_key]
                    code: &'a str,
                }
            )
        ),
        "`#[derive(Model)]` does not support generic parameters; a model is a concrete row type"
    );
}

#[test]
fn shard_attribute_on_model_derive() {
    assert_eq!(
        error(
            Derive::Model,
            quote! {
                #[shard(strategy = "hash", on = "code", count = 2)]
                struct Country { #[primary_key] code: String }
            }
        ),
        "`#[shard(..)]` cannot be used with `#[derive(Model)]`, which is for a table on one shard; \
         derive `Sharded` to spread the table over shards, or place it with \
         `#[grant(shard = \"...\")]`"
    );
}

#[test]
fn misplaced_attributes() {
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = "id", count = 2)]
                struct User { #[primary_key] #[shard(on = "id")] id: i64 }
            }
        ),
        "`#[shard(..)]` goes on the struct, not on a field; name the shard-key field with \
         `#[shard(on = \"...\")]`"
    );
    assert_eq!(
        error(
            Derive::Model,
            quote! {
                #[primary_key]
                struct Country { #[primary_key] code: String }
            }
        ),
        "`#[primary_key]` goes on a field, not on the struct"
    );
    assert_eq!(
        error(
            Derive::Model,
            quote!(
                struct Country {
                    #[primary_key(auto)]
                    code: String,
                }
            )
        ),
        "`#[primary_key]` takes no arguments"
    );
}

#[test]
fn empty_names_and_clashes() {
    assert_eq!(
        error(
            Derive::Model,
            quote! {
                #[grant(table = "")]
                struct Country { #[primary_key] code: String }
            }
        ),
        "`#[grant(table = ...)]` must not be empty; expected the SQL table name"
    );
    assert_eq!(
        error(
            Derive::Model,
            quote! {
                struct Country { #[primary_key] code: String, #[grant(column = "code")] iso: String }
            }
        ),
        "column `code` of field `iso` is already the column of field `code`; rename one with \
         `#[grant(column = \"...\")]`"
    );
    assert_eq!(
        error(
            Derive::Model,
            quote! {
                struct Country { #[primary_key] code: String, Code: String }
            }
        ),
        "field `Code` and field `code` would both get the column constant `CODE`; name one with `#[grant(constant = \"...\")]`"
    );
}

#[test]
fn every_mistake_is_reported_at_once() {
    let all = errors(
        Derive::Sharded,
        quote! {
            #[grant(tabel = "users")]
            #[shard(strategy = "hsh", on = "idd", count = 0, extra = 1)]
            struct User { id: i64, #[grant(colum = "x")] name: String }
        },
    );
    assert_eq!(
        all,
        [
            "unknown key `tabel` in `#[grant(..)]` on a struct, expected one of `table`, `crate`, `methods`, `index`, `unique`, `belongs_to`",
            "unknown strategy `hsh`, expected one of `hash`, `pg_hash`, `consistent_hash`, `range`, `mapping`, `geographic`, `lookup`, `directory`, `custom`",
            "`#[shard(count = ...)]` must be at least 1, got 0",
            "unknown key `extra` in `#[shard(..)]`, expected one of `strategy`, `on`, `count`, `prefix`, `vnodes`, `weights`, `ranges`, `map`, `default`, `home`, `policy`, `resolver`",
            "unknown key `colum` in field attribute `#[grant(..)]`, expected one of `column`, `constant`, `index`, `unique`",
            "`User` has no primary key; mark the field(s) that identify a row with `#[primary_key]`",
            "`#[shard(on = \"idd\")]` names no field of `User`; did you mean `id`?",
        ]
    );
}

#[test]
fn composite_shard_key_expansion() {
    let out = expand(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "pg_hash", on = ["tenant", "user_id"], count = 4)]
            pub struct Doc {
                #[primary_key]
                pub user_id: i64,
                #[primary_key]
                pub tenant: String,
                #[primary_key]
                pub doc_id: i64,
            }
        },
    );
    contains_all(
        &out,
        &[
            "shard_key : :: core :: option :: Option :: Some (1) , shard_key_columns : & [1 , 0]",
            "String : :: grant :: __private :: PgHashKey",
            "type ShardKey = (String , i64 ,) ;",
            "type ShardKeyRef < '__grant_key > = (& '__grant_key String , & '__grant_key i64 ,) ;",
            "(& self . tenant , & self . user_id ,)",
            ":: grant :: __private :: resolve :: pg_hash :: shard_index (& (& key . 1 , & key . 0 ,) , 4u32)",
            ":: grant :: __private :: resolve :: pg_hash :: route_values :: < Self > (values , 4u32)",
            "pub fn shard_for (key : & (String , i64 ,))",
        ],
    );
}

#[test]
fn range_and_mapping_expansions() {
    let out = expand(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "range", on = "day", ranges(new = 2025.., old = ..2025))]
            pub struct Event {
                #[primary_key]
                pub day: i32,
            }
        },
    );
    contains_all(
        &out,
        &[
            "static __GRANT_RANGES : :: grant :: __private :: resolve :: RangeResolver",
            // Sorted by start; shards in the order written.
            ":: grant :: __private :: resolve :: KeyRange :: new (:: core :: option :: Option :: None , :: core :: option :: Option :: Some (2025i64) , :: grant :: __private :: ShardId :: named (1 , \"old\"))",
            "static SHARDS : [:: grant :: __private :: ShardId ; 2] = [:: grant :: __private :: ShardId :: named (0 , \"new\") , :: grant :: __private :: ShardId :: named (1 , \"old\")]",
            "i32 : :: grant :: __private :: IntKey",
            "fn shards_for_range",
        ],
    );
    // Open at both ends: every key has a shard, so no fallible routes are generated.
    assert!(!out.contains("fn try_shard_of"), "{out}");

    let out = expand(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "lookup", on = "region", map(us = "b", de = "a"))]
            pub struct Customer {
                #[primary_key]
                pub region: String,
            }
        },
    );
    contains_all(
        &out,
        &[
            "String : :: grant :: __private :: TextKey",
            "static __GRANT_MAPPING_ENTRIES",
            "(:: grant :: __private :: resolve :: MappingKey :: text (\"de\") , :: grant :: __private :: ShardId :: named (1 , \"a\"))",
            "MappingResolver :: from_sorted (& __GRANT_MAPPING_ENTRIES , :: core :: option :: Option :: None)",
            "fn try_shard_of (& self)",
            "fn try_shard_for (key : & Self :: ShardKey)",
            ":: grant :: __private :: resolve :: mapping :: unlisted :: < Self >",
        ],
    );
}

#[test]
fn strategy_mistakes_are_reported_together() {
    let all = errors(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "range", on = "day", count = 4, vnodes = 3, ranges(a = ..10, b = 5..))]
            pub struct Event {
                #[primary_key]
                pub day: i32,
            }
        },
    );
    assert_eq!(
        all,
        [
            "`count` does not apply to `strategy = \"range\"`, which names its shards in `ranges(..)`; remove `count`",
            "`vnodes` only applies to `strategy = \"consistent_hash\"`, not `strategy = \"range\"`; remove it",
            "range `5..` of shard `b` overlaps range `..10` of shard `a`; each key belongs to one range",
        ]
    );
}

#[test]
fn composite_key_mistakes() {
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = [], count = 4)]
                pub struct Doc {
                    #[primary_key]
                    pub id: i64,
                }
            },
        ),
        "`#[shard(on = [])]` names no field; list the shard-key field(s), e.g. `on = [\"tenant_id\", \"user_id\"]`"
    );
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "hash", on = ["a", "bb"], count = 4)]
                pub struct Doc {
                    #[primary_key]
                    pub a: i64,
                    #[primary_key]
                    pub b: i64,
                }
            },
        ),
        "`#[shard(on = \"bb\")]` names no field of `Doc`; did you mean `b`?"
    );
    assert_eq!(
        error(
            Derive::Sharded,
            quote! {
                #[shard(strategy = "mapping", on = "r", map(eu = "x"), default = "")]
                pub struct Doc {
                    #[primary_key]
                    pub r: String,
                }
            },
        ),
        "`#[shard(default = ...)]` must not be empty; expected the name of the shard for unlisted values"
    );
}

#[test]
fn crate_path_names_the_grant_crate_everywhere() {
    let out = expand(
        Derive::Sharded,
        quote! {
            #[grant(crate = "crate::db::grant")]
            #[shard(strategy = "hash", on = "id", count = 8)]
            pub struct User {
                #[primary_key]
                pub id: i64,
                pub name: String,
            }
        },
    );
    contains_all(
        &out,
        &["impl crate :: db :: grant :: __private :: Model for User"],
    );
    assert!(
        !out.replace("crate :: db :: grant", "")
            .contains("grant :: __private"),
        "a path still names `::grant`:\n{out}"
    );
    // The default comes back for the next derive.
    let out = expand(Derive::Sharded, user());
    contains_all(&out, &["impl :: grant :: __private :: Model for User"]);
    let out = expand(
        Derive::Model,
        quote! {
            #[grant(crate = "crate::db::grant", reference)]
            pub struct Country {
                #[primary_key]
                pub code: String,
            }
        },
    );
    assert!(
        !out.replace("crate :: db :: grant", "")
            .contains("grant :: __private"),
        "{out}"
    );
}

#[test]
fn crate_path_must_be_a_path() {
    let message = error(
        Derive::Sharded,
        quote! {
            #[grant(crate = "not a path")]
            #[shard(strategy = "hash", on = "id", count = 8)]
            pub struct User {
                #[primary_key]
                pub id: i64,
            }
        },
    );
    assert!(
        message.contains("expects the path of the `grant` crate"),
        "{message}"
    );
}

#[test]
fn renamed_methods_and_constants_replace_the_generated_names() {
    let out = expand(
        Derive::Sharded,
        quote! {
            #[grant(methods(find = "find_by_id", insert = "insert_row", shard_for = "route"))]
            #[shard(strategy = "hash", on = "id", count = 8)]
            pub struct User {
                #[primary_key]
                pub id: i64,
                #[grant(constant = "NAME_COLUMN")]
                pub name: String,
            }
        },
    );
    contains_all(
        &out,
        &[
            "pub async fn find_by_id <",
            "pub async fn insert_row <",
            "pub fn route (key : & i64)",
            "pub const NAME_COLUMN :",
            "Like `route`, or the error",
            "Like `find_by_id`, returning",
            // Not renamed: the defaults.
            "pub async fn find_tracked <",
            "pub async fn update <",
            "pub fn try_shard_for (",
        ],
    );
    for gone in [
        "pub async fn find <",
        "pub async fn insert <",
        "pub fn shard_for (",
        "pub const NAME :",
    ] {
        assert!(!out.contains(gone), "`{gone}` still generated:\n{out}");
    }
    // The trait impls keep their own names.
    contains_all(&out, &["fn shard_for (key : & Self :: ShardKey)"]);
}

#[test]
fn generated_items_need_no_dead_code_allowance() {
    let out = expand(Derive::Sharded, user());
    assert!(!out.contains("dead_code"), "{out}");
}

#[test]
fn renames_must_be_known_methods_identifiers_and_distinct() {
    let input = |attr: TokenStream| {
        quote! {
            #attr
            #[shard(strategy = "hash", on = "id", count = 8)]
            pub struct User {
                #[primary_key]
                pub id: i64,
                pub name: String,
            }
        }
    };
    let message = error(
        Derive::Sharded,
        input(quote!(#[grant(methods(fnd = "lookup"))])),
    );
    assert!(
        message.contains("`fnd` is not a method the derive generates")
            && message.contains("did you mean `find`?"),
        "{message}"
    );
    let message = error(
        Derive::Sharded,
        input(quote!(#[grant(methods(find = "look up"))])),
    );
    assert!(message.contains("not a plain Rust identifier"), "{message}");
    let message = error(
        Derive::Sharded,
        input(quote!(#[grant(methods(find = "insert"))])),
    );
    assert!(
        message.contains("`find` and `insert` would both be named `insert`"),
        "{message}"
    );
    let message = error(
        Derive::Sharded,
        input(quote!(#[grant(methods(find = "a", update = "a"))])),
    );
    assert!(
        message.contains("`update` and `find` would both be named `a`"),
        "{message}"
    );
    // Swapping two names is fine: neither keeps its default.
    assert!(
        errors(
            Derive::Sharded,
            input(quote!(#[grant(methods(insert = "update", update = "insert"))]))
        )
        .is_empty()
    );
    let message = error(Derive::Sharded, input(quote!(#[grant(methods = "find")])));
    assert!(message.contains("renames generated methods"), "{message}");
    let message = error(
        Derive::Sharded,
        quote! {
            #[shard(strategy = "hash", on = "id", count = 8)]
            pub struct User {
                #[primary_key]
                #[grant(constant = "NAME")]
                pub id: i64,
                pub name: String,
            }
        },
    );
    assert!(
        message.contains("would both get the column constant `NAME`"),
        "{message}"
    );
}
