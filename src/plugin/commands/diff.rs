//! `kubectl qlik diff (-f FILE | -k DIR) [--connection SECRET]`: what applying manifests
//! would change in the tenant, decided by the reconciler's own
//! [`plan`]. Only reads.
//!
//! Exit status as `kubectl diff`: 0 when nothing would change, 1 when something would
//! ([`PluginError::Differences`]), 2 on any error ([`PluginError::DiffFailed`]).

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};

use crate::{
    connection,
    controller::plan::{self, Action},
    crd::{ANNOTATION_AUTOMATION_ID, QlikAutomation, automation::ManagementPolicy},
    plugin::{
        Cluster, Io, PluginError,
        cli::{DiffArgs, GlobalArgs},
        manifests::{self, ManifestSet},
        target::{RESOURCE, Tenant},
    },
    qlik::ErrorClass,
};

/// What one object would get.
enum Verdict {
    /// Nothing would change.
    Same,
    /// Something would.
    Differs,
}

/// Runs the diff; every failure exits 2.
pub async fn execute(
    global: &GlobalArgs,
    args: &DiffArgs,
    io: &mut Io<'_>,
) -> Result<(), PluginError> {
    match compare_all(global, args, io).await {
        Ok(Counts {
            total,
            differ: 0,
            failed: 0,
        }) => {
            if total == 0 {
                writeln!(io.err, "no QlikAutomation in the manifests")?;
            }
            Ok(())
        }
        Ok(Counts {
            total,
            differ,
            failed: 0,
        }) => Err(PluginError::Differences(format!(
            "{differ} of {total} QlikAutomation{} would change (exit status 1, as kubectl diff)",
            if total == 1 { "" } else { "s" }
        ))),
        Ok(Counts { total, failed, .. }) => Err(PluginError::DiffFailed(Box::new(
            PluginError::Local(format!(
                "{failed} of {total} QlikAutomation{} could not be compared (see above)",
                if total == 1 { "" } else { "s" }
            )),
        ))),
        Err(e) => Err(PluginError::DiffFailed(Box::new(e))),
    }
}

struct Counts {
    total: usize,
    differ: usize,
    failed: usize,
}

async fn compare_all(
    global: &GlobalArgs,
    args: &DiffArgs,
    io: &mut Io<'_>,
) -> Result<Counts, PluginError> {
    // The manifests first: a missing file is reported without touching the cluster.
    let text = match (&args.filename, &args.kustomize) {
        (Some(file), _) => read_manifests(file)?,
        (None, Some(dir)) => kustomize(dir).await?,
        (None, None) => return Err(PluginError::Usage("give -f FILE or -k DIR".into())),
    };
    let cluster = Cluster::connect(global).await?;
    let set = manifests::parse(&text, &cluster.namespace)
        .map_err(|e| PluginError::Local(format!("cannot read the manifests: {e}")))?;

    let mut tenants: HashMap<String, Tenant> = HashMap::new();
    let mut counts = Counts {
        total: set.automations.len(),
        differ: 0,
        failed: 0,
    };
    for obj in &set.automations {
        let label = format!(
            "qlikautomation {}/{}",
            obj.namespace().unwrap_or_default(),
            obj.name_any()
        );
        match compare(&cluster, args, &set, obj, &mut tenants).await {
            Ok((verdict, text)) => {
                write!(io.out, "{label}{text}")?;
                if matches!(verdict, Verdict::Differs) {
                    counts.differ += 1;
                }
            }
            Err(e) => {
                writeln!(io.err, "error: {label}: {e}")?;
                counts.failed += 1;
            }
        }
    }
    Ok(counts)
}

/// Reads `-f`: a file, every `.yaml`/`.yml`/`.json` file of a directory (sorted), or stdin.
fn read_manifests(path: &Path) -> Result<String, PluginError> {
    let unreadable =
        |e: std::io::Error| PluginError::Local(format!("cannot read {}: {e}", path.display()));
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(unreadable)?;
        return Ok(text);
    }
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(unreadable)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            })
            .collect();
        files.sort();
        let mut text = String::new();
        for file in files {
            let part = std::fs::read_to_string(&file)
                .map_err(|e| PluginError::Local(format!("cannot read {}: {e}", file.display())))?;
            text.push_str("\n---\n");
            text.push_str(&part);
        }
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(unreadable)
}

/// `kubectl kustomize DIR`, with `$QAO_KUBECTL` or the kubectl on PATH.
async fn kustomize(dir: &Path) -> Result<String, PluginError> {
    let kubectl = std::env::var_os("QAO_KUBECTL")
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "kubectl".into());
    let output = tokio::process::Command::new(&kubectl)
        .arg("kustomize")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| {
            PluginError::Local(format!(
                "cannot run `{} kustomize` (-k needs kubectl on PATH or in $QAO_KUBECTL): {e}",
                Path::new(&kubectl).display()
            ))
        })?;
    if !output.status.success() {
        return Err(PluginError::Local(format!(
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    String::from_utf8(output.stdout)
        .map_err(|e| PluginError::Local(format!("kubectl kustomize printed non-UTF-8: {e}")))
}

/// Compares one object with its remote; returns the text to print after its label.
async fn compare(
    cluster: &Cluster,
    args: &DiffArgs,
    set: &ManifestSet,
    obj: &QlikAutomation,
    tenants: &mut HashMap<String, Tenant>,
) -> Result<(Verdict, String), PluginError> {
    let ns = obj.namespace().unwrap_or_default();
    let (secret_ns, secret_name) = match &args.connection {
        Some(name) => (ns.clone(), name.clone()),
        None => connection::secret_of(
            &ns,
            obj.spec.connection.as_ref(),
            cluster.default_connection.as_ref(),
        )
        .map_err(PluginError::Connection)?,
    };
    let secret = format!("{secret_ns}/{secret_name}");
    if !tenants.contains_key(&secret) {
        let credentials = connection::read_secret(&cluster.client, &secret_ns, &secret_name)
            .await
            .map_err(PluginError::Connection)?;
        tenants.insert(secret.clone(), Tenant::new(credentials)?);
    }
    let tenant = &tenants[&secret];

    let workspace = match (&obj.spec.workspace, &obj.spec.workspace_from) {
        (None, Some(from)) => {
            let r = &from.config_map_key_ref;
            let data = match set.config_maps.get(&(ns.clone(), r.name.clone())) {
                Some(data) => Some(data.clone()),
                None => cluster_config_map(cluster, &ns, &r.name).await?,
            };
            Some(plan::workspace_from_data(&ns, r, data.as_ref()).map_err(PluginError::Local)?)
        }
        _ => None,
    };
    let desired = plan::desired(obj, workspace);

    let mut notes = Vec::new();
    if obj.spec.suspend {
        notes.push("spec.suspend is true: the operator applies nothing while it is");
    }
    let observe = obj.spec.management_policy == ManagementPolicy::Observe;
    if observe {
        notes.push(
            "managementPolicy Observe: the operator reports differences and never applies them",
        );
    }
    let notes: String = notes.iter().map(|n| format!("  note: {n}\n")).collect();

    let Some(id) = linked_id(cluster, obj, &secret).await? else {
        let what = if observe {
            "not linked to a remote automation: managementPolicy Observe never creates one (set the automations.qlik.dev/automation-id annotation)".to_string()
        } else {
            match &obj.spec.copy_from {
                Some(from) => format!("create {:?} (a copy of automation {from})", desired.name),
                None => format!("create {:?}", desired.name),
            }
        };
        return Ok((
            Verdict::Differs,
            format!(": {what} in the tenant of Secret {secret}\n{notes}"),
        ));
    };
    let remote = match tenant.client.get_automation(&id).await {
        Ok(remote) => remote,
        Err(e) if e.class() == ErrorClass::NotFound => {
            return Ok((
                Verdict::Differs,
                format!(
                    " (automation {id}): not found in the tenant of Secret {secret}: the operator creates it again if it had seen it, else reports NotFound\n{notes}"
                ),
            ));
        }
        Err(e) => {
            return Err(PluginError::tenant(
                format!("get automation {id}"),
                &tenant.secret,
                e,
            ));
        }
    };
    let actions = plan::plan(&desired, &remote);
    if actions.is_empty() {
        return Ok((
            Verdict::Same,
            format!(" (automation {id}): no changes\n{notes}"),
        ));
    }
    let summary: Vec<String> = actions.iter().map(Action::describe).collect();
    let mut text = format!(" (automation {id}): {}\n", summary.join(", "));
    for line in manifests::describe_changes(&desired, &remote, &actions) {
        text.push_str("  ");
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(&notes);
    Ok((Verdict::Differs, text))
}

/// The ConfigMap `ns/name` from the cluster, as the reconciler would read it.
async fn cluster_config_map(
    cluster: &Cluster,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, PluginError> {
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), ns);
    let map = maps
        .get_opt(name)
        .await
        .map_err(|e| PluginError::kube("get", "configmaps", ns, e))?;
    Ok(map.map(|m| m.data.unwrap_or_default()))
}

/// The remote the object is (or, once applied, stays) linked to: its own id annotation, else
/// the link of the object of the same name in the cluster when that one uses the same
/// Secret (the operator keeps the link through an apply). `None`: applying creates one.
async fn linked_id(
    cluster: &Cluster,
    obj: &QlikAutomation,
    secret: &str,
) -> Result<Option<String>, PluginError> {
    if let Some(id) = obj
        .annotations()
        .get(ANNOTATION_AUTOMATION_ID)
        .filter(|id| !id.is_empty())
    {
        return Ok(Some(id.clone()));
    }
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<QlikAutomation> = Api::namespaced(cluster.client.clone(), &ns);
    let live = match api.get_opt(&obj.name_any()).await {
        Ok(live) => live,
        // No CRD installed: nothing is linked.
        Err(kube::Error::Api(s)) if s.code == 404 => None,
        Err(e) => return Err(PluginError::kube("get", RESOURCE, &ns, e)),
    };
    let Some(live) = live else {
        return Ok(None);
    };
    let same_secret = connection::secret_of(
        &ns,
        live.spec.connection.as_ref(),
        cluster.default_connection.as_ref(),
    )
    .is_ok_and(|(n, s)| format!("{n}/{s}") == secret);
    if !same_secret {
        return Ok(None);
    }
    Ok(live
        .annotations()
        .get(ANNOTATION_AUTOMATION_ID)
        .cloned()
        .or_else(|| live.status.as_ref()?.automation_id.clone())
        .filter(|id| !id.is_empty()))
}
