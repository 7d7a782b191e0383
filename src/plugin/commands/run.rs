//! `kubectl qlik run NAME`: start a run, and with `--wait` follow it to the end.

use std::io::Read;

use serde_json::Value;

use crate::{
    plugin::{
        Cluster, Io, PluginError,
        cli::RunArgs,
        follow,
        render::{self, OutputFormat},
    },
    qlik::model::RunRequest,
};

/// Creates the run and reports it.
pub async fn execute(
    cluster: &Cluster,
    args: &RunArgs,
    io: &mut Io<'_>,
) -> Result<(), PluginError> {
    // Bad inputs are a usage error: find out before touching the cluster or the tenant.
    let given = args.inputs.as_deref().map(read_inputs).transpose()?;
    let target = cluster.target(&args.name).await?;
    let inputs = given.or_else(|| target.object.spec.run_inputs.clone());
    let id = &target.automation_id;
    let tenant = &target.tenant;
    let run = tenant
        .client
        .create_run(id, &RunRequest::api(inputs))
        .await
        .map_err(|e| {
            PluginError::tenant(format!("start a run of automation {id}"), &tenant.secret, e)
        })?;
    let human = args.output == OutputFormat::Table;
    // Progress goes where it does not spoil machine-readable output.
    let progress = if human { &mut *io.out } else { &mut *io.err };
    writeln!(
        progress,
        "run {} created for qlikautomation {}/{} (automation {id})",
        run.id, cluster.namespace, args.name
    )?;
    let run = if args.wait {
        follow::until_ended(tenant, id, run, args.timeout, progress).await?
    } else {
        run
    };
    if !human {
        let run_json = render::without_null_fields(&run)?;
        write!(io.out, "{}", render::structured(&run_json, args.output)?)?;
    }
    if args.wait {
        follow::require_success(&run)?;
    }
    Ok(())
}

/// Reads `--inputs`: JSON text, `@FILE`, or `@-` for stdin. Must be a JSON object, as the
/// API's `inputs` is.
pub fn read_inputs(arg: &str) -> Result<Value, PluginError> {
    let (text, source) = match arg.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| PluginError::Usage(format!("cannot read --inputs from stdin: {e}")))?;
            (text, "stdin".to_owned())
        }
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                PluginError::Usage(format!("cannot read --inputs file {path}: {e}"))
            })?;
            (text, format!("file {path}"))
        }
        None => (arg.to_owned(), "--inputs".to_owned()),
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| PluginError::Usage(format!("{source} is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(PluginError::Usage(format!(
            "{source} must be a JSON object (e.g. {{\"day\": \"2026-01-31\"}})"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_come_from_text_or_a_file() {
        assert_eq!(read_inputs(r#"{"a": 1}"#).unwrap(), json!({"a": 1}));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.json");
        std::fs::write(&path, r#"{"day": "2026-01-31"}"#).unwrap();
        assert_eq!(
            read_inputs(&format!("@{}", path.display())).unwrap(),
            json!({"day": "2026-01-31"})
        );
        let e = read_inputs("{nope").unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        assert!(
            read_inputs("[1]")
                .unwrap_err()
                .to_string()
                .contains("JSON object")
        );
        assert!(read_inputs("@/does/not/exist").is_err());
    }
}
