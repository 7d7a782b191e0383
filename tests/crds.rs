//! The committed `crds/` must be exactly what the types generate.

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn committed_crds_match_the_types() {
    let generated = qlik_automations_operator::crd::crds_yaml().unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/qlik-automations-operator.yaml"
    );
    if std::env::var_os("QAO_UPDATE_CRDS").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "crds/qlik-automations-operator.yaml is out of date: run `cargo run -- crds > crds/qlik-automations-operator.yaml`"
    );
}

#[test]
fn both_kinds_are_in_the_qlik_category_with_a_status_subresource() {
    let yaml = qlik_automations_operator::crd::crds_yaml().unwrap();
    let docs: Vec<serde_json::Value> = yaml
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    for crd in &docs {
        assert_eq!(crd["spec"]["group"], "automations.qlik.dev");
        assert_eq!(crd["spec"]["names"]["categories"][0], "qlik");
        assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
    }
    let columns: Vec<&str> = docs[0]["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "State",
            "Run Mode",
            "Last Run",
            "Last Run At",
            "Ready",
            "Age",
            "Automation ID",
            "Owner",
            "Space"
        ]
    );
    // Space only with -o wide, like the id and the owner.
    let space = &docs[0]["spec"]["versions"][0]["additionalPrinterColumns"][8];
    assert_eq!(
        (space["jsonPath"].as_str(), space["priority"].as_i64()),
        (Some(".status.spaceId"), Some(1))
    );
}

#[test]
fn no_description_breaks_a_sentence_across_lines() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/qlik-automations-operator.yaml"
    );
    let yaml = std::fs::read_to_string(path).unwrap();
    let mut found = Vec::new();
    for doc in yaml.split("---\n").filter(|d| !d.trim().is_empty()) {
        let doc: serde_json::Value = serde_yaml::from_str(doc).unwrap();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        descriptions(&doc, name, &mut found);
    }
    assert!(
        found.len() > 50,
        "only {} descriptions found: is the walk broken?",
        found.len()
    );
    let broken: Vec<String> = found
        .iter()
        .filter(|(_, text)| breaks_a_sentence(text))
        .map(|(at, text)| format!("{at}: {text:?}"))
        .collect();
    assert!(
        broken.is_empty(),
        "descriptions with a line break inside a paragraph (see crd::description::paragraphs):\n{}",
        broken.join("\n")
    );
}

/// Collects every string `description` under `value`, with its path for the failure message.
fn descriptions(value: &serde_json::Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("description", serde_json::Value::String(text)) => {
                        out.push((at.clone(), text.clone()))
                    }
                    _ => descriptions(value, format!("{at}.{key}"), out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                descriptions(item, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Whether `text` has a `\n` that is neither half of a paragraph break nor the start of a
/// list item: written independently of the generator so that it checks it, not mirrors it.
fn breaks_a_sentence(text: &str) -> bool {
    let lines: Vec<&str> = text.split('\n').collect();
    lines.windows(2).any(|pair| {
        let (before, after) = (pair[0], pair[1].trim_start());
        let paragraph_break = before.is_empty() || after.is_empty();
        let numbered = after
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        !(paragraph_break || after.starts_with("- ") || after.starts_with("* ") || numbered)
    })
}
