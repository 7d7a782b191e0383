//! The Prometheus/OpenMetrics text exposition, read back: what `kubectl qlik status` takes
//! from the operator's `/metrics`, and what the tests check the live endpoint with.

use std::collections::BTreeMap;

/// One sample of the text exposition: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric (series) name.
    pub name: String,
    /// Its labels, unescaped.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// Whether every `(label, value)` of `want` is on this sample.
    pub fn has(&self, want: &[(&str, &str)]) -> bool {
        want.iter()
            .all(|(k, v)| self.labels.get(*k).is_some_and(|have| have == v))
    }
}

/// Parses an exposition (comments and blank lines skipped); the error names the line it could
/// not read.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| sample(line).ok_or_else(|| format!("unreadable metrics line: {line}")))
        .collect()
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                c => value.push(c),
                            },
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        };
        rest = &inner[end + 1..];
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_escaped_labels_and_special_values_are_read() {
        let text = "# HELP x y\n# TYPE x counter\n\
                    x_total{a=\"1\",b=\"q\\\"uo\\\\te\\n\"} 3\n\
                    up 1 1700000000\n\
                    g{le=\"+Inf\"} +Inf\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].name, "x_total");
        assert_eq!(samples[0].labels["b"], "q\"uo\\te\n");
        assert!(samples[0].has(&[("a", "1")]));
        assert!(!samples[0].has(&[("a", "2")]));
        assert_eq!(samples[1].value, 1.0);
        assert!(samples[2].value.is_infinite());
    }

    #[test]
    fn an_unreadable_line_is_named() {
        let err = parse("ok 1\nbroken{a=\"1\" 2\n").unwrap_err();
        assert!(err.contains("broken{a=\"1\" 2"), "{err}");
        assert!(parse("nameonly\n").is_err());
    }
}
