//! A Terraform command running in the background while a test acts on it (Ctrl-C, `kill -9`
//! of the control plane, changes on the server): in its own process group, so a signal
//! reaches Terraform and its provider together; its output in files of its working directory;
//! the provider's INFO log on stderr (it says when the provider starts waiting).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use crate::harness::{poll_until, wait_with_deadline, Tf, TfOutput};

pub const APPLY: [&str; 4] = ["apply", "-input=false", "-no-color", "-auto-approve"];

pub struct Background {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    args: Vec<String>,
}

impl Background {
    /// Starts `terraform <args>` in `tf`'s directory; `tag` names its output files.
    pub fn start(tf: &Tf, args: &[&str], tag: &str) -> Background {
        let out = tf.dir.path().join(format!(".{tag}.stdout"));
        let err = tf.dir.path().join(format!(".{tag}.stderr"));
        let mut cmd = tf.command(args);
        // On stderr, not in a log file the harness may have set.
        cmd.env("TF_LOG_PROVIDER", "INFO").env_remove("TF_LOG_PATH");
        cmd.process_group(0)
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"));
        let child = cmd.spawn().expect("start terraform");
        Background {
            child,
            out,
            err,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `terraform apply -auto-approve` in the background.
    pub fn apply(tf: &Tf, tag: &str) -> Background {
        Background::start(tf, &APPLY, tag)
    }

    /// Until the provider waits for a revision it submitted (it logs the revision it rolls
    /// out, then waits for it); fails after `within`.
    pub fn await_provider_waiting(&self, within: Duration) {
        poll_until("the provider to wait for the new revision", within, || {
            std::fs::read_to_string(&self.err)
                .ok()
                .filter(|e| e.contains("rolling out revision"))
                .map(|_| ())
        });
    }

    /// Ctrl-C: SIGINT to Terraform and its provider.
    pub fn sigint_group(&self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: a plain syscall on the process group this test created (pgid = its pid).
        let rc = unsafe { libc::killpg(pgid, libc::SIGINT) };
        assert_eq!(rc, 0, "killpg({pgid}, SIGINT) failed");
    }

    /// Waits for the exit; when `deadline` passes first, kills the group and returns what it
    /// printed as the error.
    pub fn wait(mut self, deadline: Duration) -> Result<TfOutput, String> {
        match wait_with_deadline(&mut self.child, deadline) {
            Some(st) => Ok(self.output(st.code().unwrap_or(-1))),
            None => {
                // Terraform is killed and reaped; its provider may still run in the group.
                self.kill_group();
                Err(self.output(-1).describe())
            }
        }
    }

    /// [`Background::wait`], failing the test when the command does not exit in time.
    pub fn finish(self, deadline: Duration) -> TfOutput {
        let args = self.args.join(" ");
        self.wait(deadline).unwrap_or_else(|text| {
            panic!("terraform {args} did not exit within {deadline:?}; killed:\n{text}")
        })
    }

    fn output(&self, code: i32) -> TfOutput {
        TfOutput {
            args: self.args.clone(),
            code,
            stdout: std::fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.err).unwrap_or_default(),
        }
    }

    fn kill_group(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: SIGKILL to the process group this test created.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill_group();
        }
    }
}
