//! Schema descriptions reflowed into paragraphs.
//!
//! schemars copies doc comments line by line, so the CRDs would keep the source's hard line
//! breaks and `kubectl explain` would print sentences cut wherever rustfmt's width put them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    JSONSchemaPropsOrStringArray,
};

/// Joins the lines of each paragraph of `description` with a single space.
///
/// Blank lines separate paragraphs and survive as one `\n\n`. A list item (`- `, `* ` or
/// `1. `) starts its own line, keeping its indentation so nested lists stay nested; the
/// lines after it, indented or not, continue that item as Markdown reads them.
pub fn paragraphs(description: &str) -> String {
    let mut out = String::new();
    // Set by a blank line and only acted on at the next text, so that leading, trailing
    // and repeated blank lines do not pile up.
    let mut paragraph_break = false;
    for line in description.lines() {
        let text = line.trim();
        if text.is_empty() {
            paragraph_break = !out.is_empty();
            continue;
        }
        if paragraph_break {
            out.push_str("\n\n");
            paragraph_break = false;
        } else if !out.is_empty() {
            out.push(if is_list_item(text) { '\n' } else { ' ' });
        }
        out.push_str(if is_list_item(text) {
            line.trim_end()
        } else {
            text
        });
    }
    out
}

/// Whether `text` (already trimmed) opens a Markdown list item.
fn is_list_item(text: &str) -> bool {
    if text.starts_with("- ") || text.starts_with("* ") {
        return true;
    }
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    digits > 0 && text[digits..].starts_with(". ")
}

/// Applies [`paragraphs`] to every description in every version's `openAPIV3Schema`.
pub fn normalise(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            normalise_schema(schema);
        }
    }
}

// Walks the typed schema rather than the JSON so that `default`, `enum` and `example`, which
// are user data and may well hold a `description` key, are never rewritten.
fn normalise_schema(schema: &mut JSONSchemaProps) {
    if let Some(description) = schema.description.as_mut() {
        *description = paragraphs(description);
    }
    let named = [
        &mut schema.properties,
        &mut schema.pattern_properties,
        &mut schema.definitions,
    ];
    for map in named.into_iter().flatten() {
        map.values_mut().for_each(normalise_schema);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
        .into_iter()
        .flatten()
    {
        list.iter_mut().for_each(normalise_schema);
    }
    if let Some(not) = schema.not.as_mut() {
        normalise_schema(not);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => normalise_schema(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(normalise_schema);
        }
        None => {}
    }
    for extra in [
        &mut schema.additional_items,
        &mut schema.additional_properties,
    ]
    .into_iter()
    .flatten()
    {
        if let JSONSchemaPropsOrBool::Schema(extra) = extra {
            normalise_schema(extra);
        }
    }
    for dependency in schema.dependencies.iter_mut().flat_map(|d| d.values_mut()) {
        if let JSONSchemaPropsOrStringArray::Schema(dependency) = dependency {
            normalise_schema(dependency);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceValidation,
    };
    use serde_json::json;

    #[test]
    fn lines_of_a_paragraph_are_joined_with_one_space() {
        assert_eq!(
            paragraphs("Optional when the operator was started\nwith a default connection."),
            "Optional when the operator was started with a default connection."
        );
        assert_eq!(paragraphs("  padded  \n   lines  "), "padded lines");
    }

    #[test]
    fn single_lines_and_empty_text_are_unchanged() {
        assert_eq!(paragraphs("The Secret's name."), "The Secret's name.");
        assert_eq!(paragraphs(""), "");
        assert_eq!(paragraphs("\n\n"), "");
    }

    #[test]
    fn paragraph_breaks_are_kept_once() {
        assert_eq!(
            paragraphs("First\nparagraph.\n\nSecond\nparagraph."),
            "First paragraph.\n\nSecond paragraph."
        );
        assert_eq!(paragraphs("\nOne.\n\n\n \nTwo.\n\n"), "One.\n\nTwo.");
    }

    #[test]
    fn list_items_keep_their_own_line() {
        assert_eq!(
            paragraphs(
                "Modes:\n- `Delete` deletes\nit.\n- `Orphan` keeps it.\n* starred\n10. numbered\n2. again"
            ),
            "Modes:\n- `Delete` deletes it.\n- `Orphan` keeps it.\n* starred\n10. numbered\n2. again"
        );
    }

    #[test]
    fn indented_continuations_join_their_list_item() {
        assert_eq!(
            paragraphs(
                "- first item that goes\n  on and on\n      with code\n  - nested\n    item\n\nAfter."
            ),
            "- first item that goes on and on with code\n  - nested item\n\nAfter."
        );
    }

    #[test]
    fn things_that_only_look_like_markers_are_joined() {
        assert_eq!(
            paragraphs("a\n-5 degrees\n*emphasis*\n1.5 times\nv1. no"),
            "a -5 degrees *emphasis* 1.5 times v1. no"
        );
    }

    fn schema(value: serde_json::Value) -> JSONSchemaProps {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_schema_description_is_normalised_and_data_is_not() {
        let broken = "cut\nhere";
        let mut crd = CustomResourceDefinition {
            spec: CustomResourceDefinitionSpec {
                versions: vec![CustomResourceDefinitionVersion {
                    schema: Some(CustomResourceValidation {
                        open_api_v3_schema: Some(schema(json!({
                            "description": broken,
                            "properties": {
                                "description": {"description": broken, "type": "string"},
                                "list": {"items": {"description": broken}},
                                "tuple": {"items": [{"description": broken}]},
                                "map": {"additionalProperties": {"description": broken}},
                                "choice": {
                                    "allOf": [{"description": broken}],
                                    "anyOf": [{"description": broken}],
                                    "oneOf": [{"description": broken}],
                                    "not": {"description": broken}
                                },
                                "data": {
                                    "default": {"description": broken},
                                    "example": {"description": broken},
                                    "enum": [{"description": broken}]
                                }
                            },
                            "patternProperties": {"^x": {"description": broken}},
                            "definitions": {"d": {"description": broken}},
                            "dependencies": {"a": {"description": broken}, "b": ["c"]},
                            "additionalItems": {"description": broken}
                        }))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        normalise(&mut crd);
        let value = serde_json::to_value(&crd).unwrap();
        let root = &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"];

        let data = &root["properties"]["data"];
        for kept in [
            &data["default"]["description"],
            &data["example"]["description"],
            &data["enum"][0]["description"],
        ] {
            assert_eq!(kept, broken);
        }
        let mut root = root.clone();
        root["properties"].as_object_mut().unwrap().remove("data");
        let text = root.to_string();
        assert!(!text.contains(r"cut\nhere"), "{text}");
        assert_eq!(text.matches("cut here").count(), 13, "{text}");
    }
}
