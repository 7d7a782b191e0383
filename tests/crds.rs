//! The committed `crds/` must be exactly what the types generate.

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
            "Owner"
        ]
    );
}
