//! `kubectl qlik export --connection SECRET --output-dir DIR`: a tenant's automations as a
//! kustomize directory that `kubectl apply -k` adopts without a single write to the tenant.
//!
//! The reading is here (the list, one GET per automation); what is written is
//! [`exported::render`], a pure function.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Component, Path},
};

use futures::StreamExt;

use crate::{
    connection,
    plugin::{
        Cluster, Io, PluginError,
        cli::ExportArgs,
        exported::{self, HEADER, KUSTOMIZATION, Options, WORKSPACE_DIR},
        target::Tenant,
    },
    qlik::{Api, ErrorClass, Filter, ListParams, model::AutomationSummary},
};

/// The page size of the list (the API's maximum).
const PAGE_SIZE: u32 = 200;
/// Automations fetched at once (the client's limiter still paces them).
const CONCURRENT_GETS: usize = 4;
/// Progress is reported every this many automations.
const PROGRESS_EVERY: usize = 50;

/// Reads the tenant and writes the directory.
pub async fn execute(
    cluster: &Cluster,
    args: &ExportArgs,
    io: &mut Io<'_>,
) -> Result<(), PluginError> {
    let filter = args
        .filter
        .as_deref()
        .map(|f| Filter::parse(f).map_err(|e| PluginError::Usage(format!("--filter {f:?}: {e}"))))
        .transpose()?;
    let credentials =
        connection::read_secret(&cluster.client, &cluster.namespace, &args.connection)
            .await
            .map_err(PluginError::Connection)?;
    let api = credentials.api;
    let tenant = Tenant::new(credentials)?;
    let space = match (&args.space, api) {
        (Some(_), Api::V1) => {
            return Err(PluginError::Usage(format!(
                "--space needs a workflows connection: Secret {} selects the v1 API, which has no spaces",
                tenant.secret
            )));
        }
        (Some(space), _) => Some(Filter::eq("spaceId", space.as_str())),
        (None, _) => None,
    };
    let filter = match (filter, space) {
        (Some(f), Some(s)) => Some(f.and(s)),
        (f, s) => f.or(s),
    };

    let mut params = ListParams::default().limit(PAGE_SIZE);
    if let Some(filter) = filter {
        params = params.filter(filter);
    }
    // The whole tenant when the identity may see it (a bot, an admin), as the operator does.
    let listed: Vec<AutomationSummary> = tenant
        .client
        .list_tenant(&params)
        .await
        .map_err(|e| PluginError::tenant("list automations", &tenant.secret, e))?;
    // A page boundary that moved while listing may show an automation twice.
    let ids: BTreeSet<String> = listed.into_iter().map(|a| a.id).collect();
    let total = ids.len();
    writeln!(
        io.err,
        "listed {} in the tenant of Secret {}",
        automations(total),
        tenant.secret
    )?;

    let mut remotes = Vec::with_capacity(total);
    let mut gets = futures::stream::iter(ids.into_iter().map(|id| {
        let client = tenant.client.clone();
        async move {
            let result = client.get_automation(&id).await;
            (id, result)
        }
    }))
    .buffered(CONCURRENT_GETS);
    let mut done = 0;
    while let Some((id, result)) = gets.next().await {
        match result {
            Ok(automation) => remotes.push(automation),
            Err(e) if e.class() == ErrorClass::NotFound => writeln!(
                io.err,
                "warning: automation {id} was deleted while exporting; skipped"
            )?,
            Err(e) => {
                return Err(PluginError::tenant(
                    format!("get automation {id}"),
                    &tenant.secret,
                    e,
                ));
            }
        }
        done += 1;
        if done % PROGRESS_EVERY == 0 && done < total {
            writeln!(io.err, "fetched {done}/{total} automations")?;
        }
    }

    let options = Options {
        secret: args.connection.clone(),
        observe: args.observe,
        deletion_policy: args.deletion_policy.into(),
        include_owner: args.include_owner,
        api,
    };
    let export = exported::render(&remotes, &options);
    for warning in &export.warnings {
        writeln!(io.err, "warning: {warning}")?;
    }
    let removed = write_dir(&args.output_dir, &export.files)?;
    let dir = args.output_dir.display();
    let removed = match removed {
        0 => String::new(),
        1 => " (1 file of an earlier export removed)".into(),
        n => format!(" ({n} files of an earlier export removed)"),
    };
    writeln!(
        io.out,
        "exported {} to {dir}{removed}; apply with: kubectl apply -k {dir}",
        automations(remotes.len())
    )?;
    Ok(())
}

/// "1 automation", "2 automations".
fn automations(n: usize) -> String {
    if n == 1 {
        "1 automation".into()
    } else {
        format!("{n} automations")
    }
}

fn local(what: &str, path: &Path, e: std::io::Error) -> PluginError {
    PluginError::Local(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes `files` under `dir` (a file whose content is unchanged is left alone) and removes
/// the files an earlier export listed that this one does not. Returns how many it removed.
fn write_dir(dir: &Path, files: &BTreeMap<String, String>) -> Result<usize, PluginError> {
    let workspaces = dir.join(WORKSPACE_DIR);
    std::fs::create_dir_all(&workspaces).map_err(|e| local("create", &workspaces, e))?;
    let mut removed = 0;
    for stale in earlier_export(dir) {
        if !files.contains_key(&stale) {
            let path = dir.join(&stale);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(local("remove", &path, e)),
            }
        }
    }
    for (name, content) in files {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
            continue;
        }
        std::fs::write(&path, content).map_err(|e| local("write", &path, e))?;
    }
    Ok(removed)
}

/// The files a kustomization generated by an earlier export in `dir` lists (manifests and
/// workspace files): only those, and only plain relative paths, are ever removed.
fn earlier_export(dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join(KUSTOMIZATION)) else {
        return Vec::new();
    };
    if !text.starts_with(HEADER) {
        return Vec::new();
    }
    let Ok(value) = serde_yaml::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let mut paths: Vec<String> = value["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    for generator in value["configMapGenerator"].as_array().into_iter().flatten() {
        for file in generator["files"].as_array().into_iter().flatten() {
            if let Some(f) = file.as_str() {
                let path = f.split_once('=').map_or(f, |(_, p)| p);
                paths.push(path.to_owned());
            }
        }
    }
    paths.retain(|p| {
        Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    });
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_export_removes_only_what_the_first_listed() {
        let dir = tempfile::tempdir().unwrap();
        let first: BTreeMap<String, String> = [
            ("a.yaml", "a"),
            ("b.yaml", "b"),
            ("workspaces/a.json", "{}"),
            ("workspaces/b.json", "{}"),
            (
                KUSTOMIZATION,
                "# Generated by `kubectl qlik export`: x\nresources: [a.yaml, b.yaml, ../outside.yaml]\n\
                 configMapGenerator:\n  - name: a-workspace\n    files: [workspace.json=workspaces/a.json]\n\
                 \x20 - name: b-workspace\n    files: [workspace.json=workspaces/b.json]\n",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(write_dir(dir.path(), &first).unwrap(), 0);
        std::fs::write(dir.path().join("notes.md"), "mine").unwrap();
        let mut second = first.clone();
        second.remove("b.yaml");
        second.remove("workspaces/b.json");
        assert_eq!(write_dir(dir.path(), &second).unwrap(), 2);
        assert!(!dir.path().join("b.yaml").exists());
        assert!(!dir.path().join("workspaces/b.json").exists());
        assert!(dir.path().join("a.yaml").exists());
        assert!(dir.path().join("notes.md").exists(), "not ours: kept");
    }
}
