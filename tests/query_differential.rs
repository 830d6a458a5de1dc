//! RetrieveMultiple checked against a straightforward scan: random filters (fixed seed) over
//! random rows must return exactly the rows a three-valued Rust evaluation selects (on the
//! contexts, with lookup paths to their conversations; on the conversations, with `any`/`all`
//! over their contexts); user values
//! never act as SQL; and a 100,000-row paging walk returns every row once under inserts.

use crate::common;

use std::collections::BTreeSet;

use crate::test_support::Rng;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WORDS: &[&str] = &[
    "alpha", "Beta", "GAMMA", "delta", "beta", "Alpha", "sms", "SMS",
];
const CODES: &[&str] = &["1", "44", "91"];

#[derive(Debug, Clone)]
struct Row {
    id: String,
    name: Option<String>,
    code: Option<String>,
    provider: Option<i64>,
    sequence: Option<i64>,
    /// The subject of the row's conversation: `None` without one, `Some(None)` for a
    /// conversation without a subject.
    conversation: Option<Option<String>>,
}

/// A conversation and its contexts.
#[derive(Debug, Clone)]
struct Conversation {
    id: String,
    subject: Option<String>,
    contexts: Vec<Row>,
}

/// A row's truth under a filter: `None` is SQL's unknown.
type Eval<T> = Box<dyn Fn(&T) -> Option<bool>>;

/// A filter with its OData text and its evaluation (three-valued, as SQL).
struct Filter<T> {
    text: String,
    eval: Eval<T>,
}

const CONTEXTS_OF: &str = "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid";

/// A string comparison on `property` (its value given by `value`): `eq`, or one of the
/// three string functions, case-insensitive.
fn text_leaf<T: 'static>(
    rng: &mut Rng,
    property: String,
    value: fn(&T) -> Option<&String>,
) -> Filter<T> {
    let w = rng.pick(WORDS).to_string();
    let lower = w.to_lowercase();
    if rng.below(2) == 0 {
        return Filter {
            text: format!("{property} eq '{w}'"),
            eval: Box::new(move |r| value(r).map(|n| n.to_lowercase() == lower)),
        };
    }
    let part: String = lower.chars().take(3).collect();
    let (f, t): (fn(&str, &str) -> bool, &str) = match rng.below(3) {
        0 => (|n, p| n.contains(p), "contains"),
        1 => (|n, p| n.starts_with(p), "startswith"),
        _ => (|n, p| n.ends_with(p), "endswith"),
    };
    Filter {
        text: format!("{t}({property},'{part}')"),
        eval: Box::new(move |r| value(r).map(|n| f(&n.to_lowercase(), &part))),
    }
}

/// A condition on a context; inside a lambda every property starts with `prefix` (`c/`).
fn leaf(rng: &mut Rng, prefix: &str) -> Filter<Row> {
    match rng.below(11) {
        0 | 1 => text_leaf(rng, format!("{prefix}msdyn_name"), |r: &Row| {
            r.name.as_ref()
        }),
        2 => {
            let c = rng.pick(CODES).to_string();
            Filter {
                text: format!("{prefix}msdyn_countrycode ne '{c}'"),
                eval: Box::new(move |r| r.code.as_ref().map(|x| *x != c)),
            }
        }
        3 => Filter {
            text: format!("{prefix}msdyn_countrycode eq null"),
            eval: Box::new(|r| Some(r.code.is_none())),
        },
        4 => Filter {
            text: format!("{prefix}msdyn_smsprovider ne null"),
            eval: Box::new(|r| Some(r.provider.is_some())),
        },
        5 => {
            let n = rng.below(100) as i64;
            let (op, f): (&str, fn(i64, i64) -> bool) = *rng.pick(&[
                ("gt", (|a, b| a > b) as fn(i64, i64) -> bool),
                ("ge", |a, b| a >= b),
                ("lt", |a, b| a < b),
                ("le", |a, b| a <= b),
                ("eq", |a, b| a == b),
                ("ne", |a, b| a != b),
            ]);
            Filter {
                text: format!("{prefix}importsequencenumber {op} {n}"),
                eval: Box::new(move |r| r.sequence.map(|s| f(s, n))),
            }
        }
        6 => {
            let p = *rng.pick(&[192350000i64, 192350001]);
            Filter {
                text: format!("{prefix}msdyn_smsprovider eq {p}"),
                eval: Box::new(move |r| r.provider.map(|x| x == p)),
            }
        }
        7 => {
            let a = rng.pick(CODES).to_string();
            let b = rng.pick(CODES).to_string();
            Filter {
                text: format!(
                    "Microsoft.Dynamics.CRM.In(PropertyName='{prefix}msdyn_countrycode',PropertyValues=['{a}','{b}'])"
                ),
                eval: Box::new(move |r| r.code.as_ref().map(|c| *c == a || *c == b)),
            }
        }
        8 => {
            // A lookup path: true only when the conversation exists and its subject matches
            // (no conversation, or one without a subject, is false, never unknown).
            let inner = text_leaf(
                rng,
                format!("{prefix}msdyn_liveworkitemid/subject"),
                |subject: &Option<String>| subject.as_ref(),
            );
            let eval = inner.eval;
            Filter {
                text: inner.text,
                eval: Box::new(move |r| {
                    Some(
                        r.conversation
                            .as_ref()
                            .is_some_and(|s| eval(s) == Some(true)),
                    )
                }),
            }
        }
        9 => Filter {
            text: format!("{prefix}msdyn_liveworkitemid/subject eq null"),
            eval: Box::new(|r| Some(matches!(r.conversation, Some(None)))),
        },
        _ => {
            let lo = rng.below(50) as i64;
            let hi = lo + rng.below(50) as i64;
            Filter {
                text: format!(
                    "Microsoft.Dynamics.CRM.Between(PropertyName='{prefix}importsequencenumber',PropertyValues=['{lo}','{hi}'])"
                ),
                eval: Box::new(move |r| r.sequence.map(|s| s >= lo && s <= hi)),
            }
        }
    }
}

/// A condition on a conversation: its subject, or `any`/`all` over its contexts with a
/// random context filter (counting a context whose filter is unknown as not matching).
fn conversation_leaf(rng: &mut Rng) -> Filter<Conversation> {
    match rng.below(4) {
        0 => text_leaf(rng, "subject".into(), |c: &Conversation| c.subject.as_ref()),
        1 if rng.below(4) == 0 => Filter {
            text: format!("{CONTEXTS_OF}/any()"),
            eval: Box::new(|c| Some(!c.contexts.is_empty())),
        },
        kind => {
            let inner = filter(rng, 2, &mut |rng| leaf(rng, "c/"));
            let eval = inner.eval;
            let all = kind == 3;
            Filter {
                text: format!(
                    "{CONTEXTS_OF}/{}(c:{})",
                    if all { "all" } else { "any" },
                    inner.text
                ),
                eval: Box::new(move |c| {
                    let mut matches = c.contexts.iter().map(|r| eval(r) == Some(true));
                    Some(if all {
                        matches.all(|m| m)
                    } else {
                        matches.any(|m| m)
                    })
                }),
            }
        }
    }
}

fn filter<T: 'static>(
    rng: &mut Rng,
    depth: u32,
    leaf: &mut dyn FnMut(&mut Rng) -> Filter<T>,
) -> Filter<T> {
    if depth == 0 || rng.below(3) == 0 {
        return leaf(rng);
    }
    match rng.below(3) {
        0 => {
            let inner = filter(rng, depth - 1, leaf);
            let eval = inner.eval;
            Filter {
                text: format!("not ({})", inner.text),
                eval: Box::new(move |r| eval(r).map(|b| !b)),
            }
        }
        kind => {
            let (a, b) = (filter(rng, depth - 1, leaf), filter(rng, depth - 1, leaf));
            let (ea, eb) = (a.eval, b.eval);
            let and = kind == 1;
            Filter {
                text: format!(
                    "({}) {} ({})",
                    a.text,
                    if and { "and" } else { "or" },
                    b.text
                ),
                eval: Box::new(move |r| match (ea(r), eb(r), and) {
                    (Some(false), _, true) | (_, Some(false), true) => Some(false),
                    (Some(true), Some(true), true) => Some(true),
                    (_, _, true) => None,
                    (Some(true), _, false) | (_, Some(true), false) => Some(true),
                    (Some(false), Some(false), false) => Some(false),
                    (_, _, false) => None,
                }),
            }
        }
    }
}

/// GET `set?$filter=text&$count=true`: the `key` values returned, after checking the count.
async fn filtered(
    app: &TestApp,
    set: &str,
    key: &str,
    text: &str,
    round: usize,
) -> BTreeSet<String> {
    let response = app
        .get(&format!(
            "{set}?$select={key}&$count=true&$filter={}",
            encode(text)
        ))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "round {round}: {text}: {body}");
    let got: BTreeSet<String> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[key].as_str().unwrap().to_string())
        .collect();
    assert_eq!(body["@odata.count"], got.len(), "round {round}: {text}");
    got
}

#[tokio::test]
async fn random_filters_select_what_a_scan_selects() {
    let app = spawn_app().await;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Twelve conversations (some without a subject); each context in one of them or none.
    let mut conversations = Vec::new();
    for _ in 0..12 {
        let subject = (rng.below(5) != 0).then(|| rng.pick(WORDS).to_string());
        let id = app
            .create("msdyn_ocliveworkitems", &json!({"subject": subject}))
            .await;
        conversations.push(Conversation {
            id,
            subject,
            contexts: Vec::new(),
        });
    }
    let mut rows = Vec::new();
    for _ in 0..150 {
        let name = (rng.below(8) != 0).then(|| rng.pick(WORDS).to_string());
        let code = (rng.below(3) != 0).then(|| rng.pick(CODES).to_string());
        let provider = (rng.below(3) != 0).then(|| *rng.pick(&[192350000i64, 192350001]));
        let sequence = (rng.below(4) != 0).then(|| rng.below(100) as i64);
        let conversation = (rng.below(4) != 0).then(|| rng.below(conversations.len()));
        let mut body = json!({"msdyn_name": name, "msdyn_countrycode": code, "msdyn_smsprovider": provider,
                              "importsequencenumber": sequence});
        if let Some(c) = conversation {
            body["msdyn_liveworkitemid@odata.bind"] =
                json!(format!("/msdyn_ocliveworkitems({})", conversations[c].id));
        }
        let id = app.create(CTX, &body).await;
        let row = Row {
            id,
            name,
            code,
            provider,
            sequence,
            conversation: conversation.map(|c| conversations[c].subject.clone()),
        };
        if let Some(c) = conversation {
            conversations[c].contexts.push(row.clone());
        }
        rows.push(row);
    }
    for round in 0..300 {
        let f = filter(&mut rng, 3, &mut |rng| leaf(rng, ""));
        let expected: BTreeSet<String> = rows
            .iter()
            .filter(|r| (f.eval)(r) == Some(true))
            .map(|r| r.id.clone())
            .collect();
        let got = filtered(&app, CTX, "msdyn_smsengagementctxid", &f.text, round).await;
        assert_eq!(got, expected, "round {round}: {}", f.text);
    }
    for round in 0..150 {
        let f = filter(&mut rng, 2, &mut conversation_leaf);
        let expected: BTreeSet<String> = conversations
            .iter()
            .filter(|c| (f.eval)(c) == Some(true))
            .map(|c| c.id.clone())
            .collect();
        let got = filtered(&app, "msdyn_ocliveworkitems", "activityid", &f.text, round).await;
        assert_eq!(got, expected, "round {round}: {}", f.text);
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn user_values_never_act_as_sql() {
    let app = spawn_app().await;
    let id = app
        .create(CTX, &json!({"msdyn_name": "x' OR '1'='1"}))
        .await;
    app.create(CTX, &json!({"msdyn_name": "other"})).await;
    let attacks = [
        "$filter=msdyn_name eq 'x'' OR ''1''=''1'",
        "$filter=msdyn_name eq 'nothing'' OR 1=1 --'",
        "$filter=contains(msdyn_name,'%'' OR 1=1; DROP TABLE msdyn_smsengagementctx; --')",
        "$filter=msdyn_name eq 'a'; DROP TABLE msdyn_smsengagementctx; --",
        "$orderby=msdyn_name; DROP TABLE msdyn_smsengagementctx",
        "$orderby=(SELECT 1)",
        "$select=msdyn_name,(select sqlite_version())",
        "$select=msdyn_name FROM sqlite_master --",
        "$top=1; DROP TABLE msdyn_smsengagementctx",
        "$apply=groupby((msdyn_name),aggregate($count as c); DROP TABLE x)",
        "$apply=aggregate(msdyn_name with countdistinct as \"x; DROP TABLE y\")",
        "$expand=msdyn_liveworkitemid($select=subject) UNION SELECT 1",
        "$skiptoken=%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253Ccookie%2520page%253D%25221%2522%253E%253Cmsdyn_smsengagementctxid%2520last%253D%2522%257B1%2527)%2520OR%25201%253D1%2520--%257D%2522%2520%252F%253E%253C%252Fcookie%253E%22%20/%3E",
        "fetchXml=%3Cfetch%3E%3Centity%20name%3D%22msdyn_smsengagementctx%22%3E%3Cfilter%3E%3Ccondition%20attribute%3D%22msdyn_name%22%20operator%3D%22eq%22%20value%3D%22%27%20OR%201%3D1%20--%22%2F%3E%3C%2Ffilter%3E%3C%2Fentity%3E%3C%2Ffetch%3E",
        "fetchXml=%3Cfetch%3E%3Centity%20name%3D%22msdyn_smsengagementctx%3B%20DROP%20TABLE%20x%22%2F%3E%3C%2Ffetch%3E",
    ];
    for attack in attacks {
        let response = app.get(&format!("{CTX}?{attack}")).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "{attack}: {status} {body}"
        );
        if status == StatusCode::OK {
            let rows = body["value"].as_array().unwrap();
            assert!(rows.len() <= 1, "{attack} widened the result: {body}");
            for row in rows {
                assert_eq!(row["msdyn_smsengagementctxid"], id, "{attack}: {body}");
            }
        }
    }
    let rows = app.get_json(CTX).await;
    assert_eq!(
        rows["value"].as_array().unwrap().len(),
        2,
        "nothing was dropped"
    );
    let exact = app
        .get_json(&format!(
            "{CTX}?$filter={}",
            encode("msdyn_name eq 'x'' OR ''1''=''1'")
        ))
        .await;
    assert_eq!(
        exact["value"][0]["msdyn_smsengagementctxid"], id,
        "the value matched literally"
    );
}

/// 100,000 rows created through `$batch` change sets, then walked 5000 at a time while rows
/// are inserted between pages.
#[tokio::test]
async fn a_100000_row_paging_walk_returns_every_row_once() {
    let app = spawn_app().await;
    const ROWS: usize = 100_000;
    const PER_BATCH: usize = 1000;
    for batch in 0..ROWS / PER_BATCH {
        let mut body = String::from("--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n");
        for n in 0..PER_BATCH {
            body.push_str(&format!(
                "--c\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {n}\r\n\r\nPOST msdyn_smsengagementctxes HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"msdyn_name\":\"row {}\"}}\r\n",
                batch * PER_BATCH + n
            ));
        }
        body.push_str("--c--\r\n--b--\r\n");
        let response = app
            .request(Method::POST, "$batch")
            .header("Content-Type", "multipart/mixed; boundary=b")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let mut seen = Vec::with_capacity(ROWS + 64);
    let mut next = Some(app.url(&format!(
        "{CTX}?$select=msdyn_name&$orderby=msdyn_name desc"
    )));
    let mut pages = 0;
    while let Some(url) = next {
        let body: Value = app
            .client
            .get(&url)
            .bearer_auth(TOKEN)
            .header("Prefer", "odata.maxpagesize=5000")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for row in body["value"].as_array().unwrap() {
            seen.push(row["msdyn_name"].as_str().unwrap().to_string());
        }
        next = body["@odata.nextLink"].as_str().map(str::to_string);
        app.create(
            CTX,
            &json!({"msdyn_name": format!("inserted during page {pages}")}),
        )
        .await;
        pages += 1;
    }
    assert!(pages >= 20, "{pages} pages");
    let originals: BTreeSet<&String> = seen.iter().filter(|n| n.starts_with("row ")).collect();
    assert_eq!(originals.len(), ROWS, "every original row");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
}
