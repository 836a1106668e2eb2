//! Killing or dropping a process also kills what it forked (nginx's workers,
//! a shell's children): nothing of a stack may outlive it.

use std::time::Duration;

use gantry_harness::run::process::{Process, Spec};
use gantry_harness::run::wait;

/// Live processes whose command line is `sleep <marker>`.
fn sleeping(marker: &str) -> usize {
    let wanted = format!("sleep\0{marker}\0");
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes()))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn dropping_a_process_kills_its_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("3{}.5", std::process::id());
    let spec = Spec {
        name: "forker".into(),
        program: "/bin/sh".into(),
        args: vec!["-c".into(), format!("sleep {marker} & sleep {marker}")],
        env: vec![],
        log: dir.path().join("forker.log"),
    };
    let process = Process::start(spec).unwrap();
    wait::until("both children to run", Duration::from_secs(10), None, || async {
        Ok(sleeping(&marker) == 2)
    })
    .await
    .unwrap();
    drop(process);
    wait::until("the children to be gone", Duration::from_secs(10), None, || async {
        Ok(sleeping(&marker) == 0)
    })
    .await
    .unwrap();
}
