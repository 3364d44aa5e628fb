//! The `fapiao` binary as an operator runs it: `fapiao serve` on embedded defaults starts, says
//! where it listens, answers health checks, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Read the log until the listening line; return the address and the development token printed
/// before it.
fn address_and_token(child: &mut Child) -> (String, String) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut token = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("log line");
        if let Some(rest) = line.split("every seller): ").nth(1) {
            token = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.split("address=").nth(1)
            && line.contains("fapiao listening")
        {
            let address = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            return (
                address,
                token.expect("a development token before the listening line"),
            );
        }
    }
    panic!("the server exited without saying where it listens");
}

#[tokio::test]
async fn serve_starts_on_defaults_and_stops_on_sigterm() {
    // The embedded defaults keep their data under ./data: run in a fresh folder.
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_fapiao"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FAPIAO_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fapiao starts");
    let mut running = Running(child);
    let (address, token) = address_and_token(&mut running.0);

    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let status = health
        .check(HealthCheckRequest {
            service: "fapiao.v1.IssuanceService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");

    // The printed development token opens the issuance service.
    let mut request = tonic::Request::new(fapiao_proto::v1::ValidateInvoiceRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let answer = fapiao_proto::v1::issuance_service_client::IssuanceServiceClient::new(channel)
        .validate_invoice(request)
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.valid, "an empty invoice is reported, not refused");

    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Bounded wait for the exit; the loop polls the process, it does not time the test.
    let give_up = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = running.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < give_up, "fapiao did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit}");
    assert!(
        dir.path().join("data/fapiao.db").exists(),
        "the SQLite database is under ./data"
    );
}

#[test]
fn a_bad_config_file_stops_start_up_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("fapiao-bad-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fapiao.toml");
    std::fs::write(
        &path,
        "[[sellers]]\ntax_id = \"91310000MA1FP00012\"\nname = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fapiao"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("seller profile 0 has an invalid tax id"),
        "{stderr}"
    );
}
