//! RetrieveMultiple checked against a straightforward scan: random filters (fixed seed) over
//! random rows must return exactly the rows a three-valued Rust evaluation selects; user values
//! never act as SQL; and a 100,000-row paging walk returns every row once under inserts.

mod common;
#[path = "../src/test_support.rs"]
mod test_support;

use std::collections::BTreeSet;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use test_support::Rng;

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
}

/// A row's truth under a filter: `None` is SQL's unknown.
type Eval = Box<dyn Fn(&Row) -> Option<bool>>;

/// A filter with its OData text and its evaluation (three-valued, as SQL).
struct Filter {
    text: String,
    eval: Eval,
}

fn leaf(rng: &mut Rng) -> Filter {
    match rng.below(9) {
        0 => {
            let w = rng.pick(WORDS).to_string();
            let lower = w.to_lowercase();
            Filter {
                text: format!("msdyn_name eq '{w}'"),
                eval: Box::new(move |r| r.name.as_ref().map(|n| n.to_lowercase() == lower)),
            }
        }
        1 => {
            let w = rng.pick(WORDS).to_string();
            let lower = w.to_lowercase();
            let part: String = lower.chars().take(3).collect();
            let (f, t): (fn(&str, &str) -> bool, &str) = match rng.below(3) {
                0 => (|n, p| n.contains(p), "contains"),
                1 => (|n, p| n.starts_with(p), "startswith"),
                _ => (|n, p| n.ends_with(p), "endswith"),
            };
            let text = format!("{t}(msdyn_name,'{part}')");
            Filter {
                text,
                eval: Box::new(move |r| r.name.as_ref().map(|n| f(&n.to_lowercase(), &part))),
            }
        }
        2 => {
            let c = rng.pick(CODES).to_string();
            Filter {
                text: format!("msdyn_countrycode ne '{c}'"),
                eval: Box::new(move |r| r.code.as_ref().map(|x| *x != c)),
            }
        }
        3 => Filter {
            text: "msdyn_countrycode eq null".into(),
            eval: Box::new(|r| Some(r.code.is_none())),
        },
        4 => Filter {
            text: "msdyn_smsprovider ne null".into(),
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
                text: format!("importsequencenumber {op} {n}"),
                eval: Box::new(move |r| r.sequence.map(|s| f(s, n))),
            }
        }
        6 => {
            let p = *rng.pick(&[192350000i64, 192350001]);
            Filter {
                text: format!("msdyn_smsprovider eq {p}"),
                eval: Box::new(move |r| r.provider.map(|x| x == p)),
            }
        }
        7 => {
            let a = rng.pick(CODES).to_string();
            let b = rng.pick(CODES).to_string();
            Filter {
                text: format!(
                    "Microsoft.Dynamics.CRM.In(PropertyName='msdyn_countrycode',PropertyValues=['{a}','{b}'])"
                ),
                eval: Box::new(move |r| r.code.as_ref().map(|c| *c == a || *c == b)),
            }
        }
        _ => {
            let lo = rng.below(50) as i64;
            let hi = lo + rng.below(50) as i64;
            Filter {
                text: format!(
                    "Microsoft.Dynamics.CRM.Between(PropertyName='importsequencenumber',PropertyValues=['{lo}','{hi}'])"
                ),
                eval: Box::new(move |r| r.sequence.map(|s| s >= lo && s <= hi)),
            }
        }
    }
}

fn filter(rng: &mut Rng, depth: u32) -> Filter {
    if depth == 0 || rng.below(3) == 0 {
        return leaf(rng);
    }
    match rng.below(3) {
        0 => {
            let inner = filter(rng, depth - 1);
            let eval = inner.eval;
            Filter {
                text: format!("not ({})", inner.text),
                eval: Box::new(move |r| eval(r).map(|b| !b)),
            }
        }
        kind => {
            let (a, b) = (filter(rng, depth - 1), filter(rng, depth - 1));
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

#[tokio::test]
async fn random_filters_select_what_a_scan_selects() {
    let app = spawn_app().await;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut rows = Vec::new();
    for _ in 0..150 {
        let name = (rng.below(8) != 0).then(|| rng.pick(WORDS).to_string());
        let code = (rng.below(3) != 0).then(|| rng.pick(CODES).to_string());
        let provider = (rng.below(3) != 0).then(|| *rng.pick(&[192350000i64, 192350001]));
        let sequence = (rng.below(4) != 0).then(|| rng.below(100) as i64);
        let id = app
            .create(
                CTX,
                &json!({"msdyn_name": name, "msdyn_countrycode": code, "msdyn_smsprovider": provider,
                        "importsequencenumber": sequence}),
            )
            .await;
        rows.push(Row {
            id,
            name,
            code,
            provider,
            sequence,
        });
    }
    for round in 0..300 {
        let f = filter(&mut rng, 3);
        let expected: BTreeSet<String> = rows
            .iter()
            .filter(|r| (f.eval)(r) == Some(true))
            .map(|r| r.id.clone())
            .collect();
        let response = app
            .get(&format!(
                "{CTX}?$select=msdyn_name&$count=true&$filter={}",
                encode(&f.text)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "round {round}: {}",
            f.text
        );
        let body: Value = response.json().await.unwrap();
        let got: BTreeSet<String> = body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["msdyn_smsengagementctxid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, expected, "round {round}: {}", f.text);
        assert_eq!(
            body["@odata.count"],
            expected.len(),
            "round {round}: {}",
            f.text
        );
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
