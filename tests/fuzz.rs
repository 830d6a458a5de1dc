//! Time-bounded mutation fuzzing of every parser that reads what a client or a provider sends:
//! the OData query options (`$filter`, `$orderby`, `$select`, `$expand`, `$top`, `$apply`), the
//! URL path, FetchXML, the `$batch` codec, the JSON body binder, and the Twilio and TeleSign
//! webhook payloads. Each target mutates a corpus of valid inputs (byte flips, inserted tokens,
//! cut, doubled and spliced ranges) and must answer every input with `Ok` or an error, never a
//! panic. It runs on the stable toolchain, without coverage guidance, for
//! `SMSCTX_FUZZ_SECONDS` per target (default 2; `.ci/run` sets more) and prints the executions
//! per target for BENCHMARKS.md. `SMSCTX_FUZZ_SEED` replays a run.
//!
//! A panic fails the test and prints the seed and the input (escaped): copy it into a unit test
//! beside the parser, fix the parser, and keep the test.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use smsctx::metadata::Catalog;

/// xorshift64*: small, fast, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens worth inserting: the grammar's own words and the bytes that break parsers.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "'",
    "''",
    "\"",
    ",",
    "/",
    " ",
    " and ",
    " or ",
    "not ",
    " eq ",
    " ne ",
    " gt ",
    "null",
    "true",
    "$",
    "@",
    "@p1",
    "%",
    "%27",
    "%00",
    "\\",
    "\u{0}",
    "\u{7f}",
    "é",
    "\u{1F600}",
    "\u{FFFD}",
    "9999999999999999999999",
    "-1",
    "1e309",
    "0x",
    "<",
    ">",
    "</",
    "/>",
    "<![CDATA[",
    "&amp;",
    "&#0;",
    "<filter>",
    "<condition attribute='a' operator='eq' value='1'/>",
    "{",
    "}",
    "[",
    "]",
    ":",
    "\r\n",
    "\n",
    "--batch_x",
    "--changeset_y--",
    "Content-Type: ",
    "msdyn_name",
    "statecode",
    "_msdyn_liveworkitemid_value",
    "Microsoft.Dynamics.CRM.In(",
    "groupby((",
    "aggregate(",
    " with ",
    " as ",
    "any(o:o/",
    "$count",
    "*",
    "((((((((((",
];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut input = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(6) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let at = rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
            2 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                input.drain(start..end);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(32)).min(len);
                let copy: Vec<u8> = input[start..end].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, copy);
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(input.len() + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            5 if len > 0 => input.truncate(rng.below(len)),
            _ => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next() as u8);
            }
        }
    }
    input
}

fn seconds() -> Duration {
    let secs = std::env::var("SMSCTX_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

fn seed() -> u64 {
    std::env::var("SMSCTX_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// Runs `target` on mutations of `corpus` for the configured time; fails on the first panic.
fn fuzz(name: &str, corpus: &[&str], target: impl Fn(&[u8])) {
    let corpus: Vec<Vec<u8>> = corpus.iter().map(|s| s.as_bytes().to_vec()).collect();
    let seed = seed();
    let mut rng = Rng(seed);
    let budget = seconds();
    let started = Instant::now();
    let mut executions = 0u64;
    // The corpus itself first: valid inputs must not panic either.
    let inputs = corpus.clone().into_iter();
    let mut pending: Box<dyn Iterator<Item = Vec<u8>>> = Box::new(inputs);
    while started.elapsed() < budget || executions < corpus.len() as u64 {
        let input = pending.next().unwrap_or_else(|| mutate(&mut rng, &corpus));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "fuzz target {name} panicked ({message}) on input {:?} (SMSCTX_FUZZ_SEED={seed})",
                String::from_utf8_lossy(&input)
            );
        }
        executions += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "fuzz {name}: {executions} executions in {elapsed:.1} s ({:.0}/s), seed {seed}",
        executions as f64 / elapsed
    );
}

fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

#[test]
fn fuzz_query_options() {
    let catalog = Catalog::builtin().unwrap();
    let entity = catalog.entity("msdyn_smsengagementctx").unwrap();
    let names = [
        "$filter", "$orderby", "$select", "$expand", "$top", "$count", "$apply",
    ];
    fuzz(
        "query options",
        &[
            "$filter=msdyn_name eq 'a' and statecode eq 0",
            "$filter=contains(msdyn_name,'x') or not (msdyn_smsprovider eq 192350001)",
            "$filter=Microsoft.Dynamics.CRM.In(PropertyName='statecode',PropertyValues=['0','1'])",
            "$filter=createdon gt 2024-01-01T00:00:00Z and _msdyn_liveworkitemid_value eq null",
            "$filter=msdyn_name eq @p1",
            "$orderby=createdon desc,msdyn_name asc",
            "$select=msdyn_name,statecode,_msdyn_liveworkitemid_value",
            "$expand=msdyn_liveworkitemid($select=subject)",
            "$top=10",
            "$count=true",
            "$apply=groupby((msdyn_smsprovider,statecode),aggregate($count as count))",
            "$apply=filter(statecode eq 0)/aggregate(msdyn_name with countdistinct as n)",
        ],
        |input| {
            let text = text(input);
            let (name, value) = text.split_once('=').unwrap_or(("$filter", &text));
            let name = if names.contains(&name) {
                name
            } else {
                names[text.len() % names.len()]
            };
            let pairs = vec![
                (name.to_string(), value.to_string()),
                ("@p1".to_string(), "'x'".to_string()),
            ];
            let _ = smsctx::query::options::QueryOptions::parse(&catalog, entity, &pairs);
            let aliases = HashMap::from([("@p1".to_string(), "'x'".to_string())]);
            let _ = smsctx::query::apply::parse(entity, value, &aliases);
        },
    );
}

#[test]
fn fuzz_paths() {
    let catalog = Catalog::builtin().unwrap();
    fuzz(
        "url path",
        &[
            "msdyn_smsengagementctxes(6f0c1c1e-0000-0000-0000-000000000001)/msdyn_name/$value",
            "msdyn_smsengagementctxes/$count",
            "systemusers(6f0c1c1e-0000-0000-0000-000000000001)/systemuserroles_association/$ref",
            "IsValidStateTransition(Entity=@e,NewState=@s,NewStatus=@n)",
            "EntityDefinitions(LogicalName='msdyn_smsengagementctx')/Attributes(LogicalName='msdyn_name')",
            "msdyn_smsengagementctxes(6f0c1c1e-0000-0000-0000-000000000001)/Microsoft.Dynamics.CRM.smsctx_SendSms",
        ],
        |input| {
            let segments: Vec<String> = text(input).split('/').map(str::to_string).collect();
            let _ = smsctx::parse::path::parse(&catalog, &segments);
        },
    );
}

#[test]
fn fuzz_fetchxml() {
    let catalog = Catalog::builtin().unwrap();
    fuzz(
        "fetchxml",
        &[
            "<fetch top='5'><entity name='msdyn_smsengagementctx'><attribute name='msdyn_name'/><filter type='and'><condition attribute='statecode' operator='eq' value='0'/></filter><order attribute='createdon' descending='true'/></entity></fetch>",
            "<fetch aggregate='true'><entity name='msdyn_smsengagementctx'><attribute name='msdyn_smsprovider' groupby='true' alias='p'/><attribute name='msdyn_name' aggregate='count' alias='n'/></entity></fetch>",
            "<fetch count='2' page='3' paging-cookie='&lt;cookie page=\"2\"&gt;&lt;/cookie&gt;'><entity name='msdyn_smsengagementctx'><all-attributes/><link-entity name='msdyn_ocliveworkitem' from='activityid' to='msdyn_liveworkitemid' alias='c' link-type='outer'><attribute name='subject'/></link-entity><filter><condition attribute='msdyn_name' operator='like' value='%a%'/><condition attribute='statecode' operator='in'><value>0</value><value>1</value></condition></filter></entity></fetch>",
        ],
        |input| {
            let _ = smsctx::query::fetchxml::parse(&catalog, &text(input));
        },
    );
}

#[test]
fn fuzz_batch_codec() {
    let body = "--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_1\r\n\r\n--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\nPOST msdyn_smsengagementctxes HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"msdyn_name\":\"a\"}\r\n--changeset_1\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\nPATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"msdyn_name\":\"b\"}\r\n--changeset_1--\r\n--batch_1\r\nContent-Type: application/http\r\n\r\nGET msdyn_smsengagementctxes?$top=1 HTTP/1.1\r\nAccept: application/json\r\n\r\n--batch_1--\r\n";
    let bare = "--b\nContent-Type: application/http\n\nGET systemusers HTTP/1.1\n\n--b--";
    fuzz("batch codec", &[body, bare], |input| {
        let boundary = if input.starts_with(b"--b\n") {
            "b"
        } else {
            "batch_1"
        };
        let _ = smsctx::batch::parse_batch(&format!("multipart/mixed; boundary={boundary}"), input);
    });
}

#[test]
fn fuzz_json_body() {
    let catalog = Catalog::builtin().unwrap();
    let entity = catalog.entity("msdyn_smsengagementctx").unwrap();
    fuzz(
        "json body",
        &[
            r#"{"msdyn_name":"ctx 1","msdyn_customerphonenumber":"14255550100","msdyn_smsprovider":192350001}"#,
            r#"{"msdyn_liveworkitemid@odata.bind":"/msdyn_ocliveworkitems(6f0c1c1e-0000-0000-0000-000000000001)","ownerid@odata.bind":"/teams(6f0c1c1e-0000-0000-0000-000000000002)"}"#,
            r#"{"statecode":1,"statuscode":2,"overriddencreatedon":"2024-02-29T12:00:00Z","msdyn_name":null}"#,
            r#"{"@odata.type":"Microsoft.Dynamics.CRM.msdyn_smsengagementctx","msdyn_name":"\u00e9\ud83d\ude00"}"#,
        ],
        |input| {
            if let Ok(object) = smsctx::parse::body::parse_object(entity, input) {
                let _ = smsctx::parse::body::parse_payload(&catalog, entity, &object);
            }
        },
    );
}

#[test]
fn fuzz_webhook_payloads() {
    fuzz(
        "webhook payloads",
        &[
            "MessageSid=SM1&AccountSid=AC1&From=%2B14255550111&To=%2B14252306549&Body=Hello+there&NumMedia=0",
            r#"{"status":{"code":200,"description":"Delivered"},"submit_timestamp":"2024-01-01T00:00:00Z","reference_id":"0123456789ABCDEF","user_response":{"phone_number":"14255550111","sender_id":"14252306550","mo_message":"Hi"}}"#,
            r#"{"reference_id":"X","status":{"code":200},"phone_number":"14255550111","mo_message":"Hi"}"#,
        ],
        |input| {
            if let Ok(params) = smsctx::channels::twilio::parse_form(input) {
                let _ = smsctx::channels::twilio::TwilioInbound::from_params(&params);
            }
            let _ = smsctx::channels::telesign::TeleSignInbound::from_json(input);
        },
    );
}
