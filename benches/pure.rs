//! Benchmarks of the pure parts: signing, parsing a 100-package page, and building and encoding
//! the exposition of 1,000 and 10,000 packages. Run with `cargo bench --bench pure`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tencent_live_exporter::domain::{Package, QueryType};
use tencent_live_exporter::exposition::metrics::{PairSeries, encode};
use tencent_live_exporter::exposition::store::Exposition;
use tencent_live_exporter::telemetry::ExporterMetrics;
use tencent_live_exporter::tencent::models::parse_answer;
use tencent_live_exporter::tencent::sign::{SigningInput, authorization};

fn page_json(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"Id":"{}","Type":0,"Status":1,"Total":500000000000,"Used":{},"Left":{},"BuyTime":"2026-07-16 18:46:08","ExpireTime":"2027-07-16 18:46:08","WillRenew":0,"RenewalResult":0}}"#,
                100_000 + i,
                2_365_271_265u64 + i as u64,
                497_634_728_735u64 - i as u64
            )
        })
        .collect();
    format!(
        r#"{{"Response":{{"RequestId":"53fc3618-4152-4e12-a1e6-3805e647a602","LivePackageInfoList":[{}],"PackageBillMode":204,"FluxPackageBillMode":"204,204,204,204,-1,-1","TotalPage":1,"TotalNum":{n},"PageNum":1,"PageSize":100}}}}"#,
        items.join(",")
    )
}

fn packages(n: usize) -> Vec<Package> {
    let body = page_json(100);
    let page = parse_answer(body.as_bytes(), QueryType::Traffic)
        .unwrap()
        .packages;
    (0..n)
        .map(|i| {
            let mut p = page[i % 100].clone();
            p.id = format!("{}", 1_000_000 + i);
            p
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let body = br#"{"PackageType":0,"PageNum":1,"PageSize":100}"#;
    c.bench_function("sign one request", |b| {
        b.iter(|| {
            authorization(
                black_box("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE"),
                black_box("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
                &SigningInput {
                    host: "live.tencentcloudapi.com",
                    content_type: "application/json",
                    service: "live",
                    timestamp: 1_551_113_065,
                    body,
                },
            )
        })
    });

    let page = page_json(100);
    let mut g = c.benchmark_group("parse page");
    g.throughput(Throughput::Elements(100));
    g.bench_function("100 packages", |b| {
        b.iter(|| parse_answer(black_box(page.as_bytes()), QueryType::Traffic).unwrap())
    });
    g.finish();

    let metrics = ExporterMetrics::new();
    metrics.init_account("bench");
    let mut g = c.benchmark_group("encode exposition");
    for n in [1_000usize, 10_000] {
        let list = packages(n);
        let pairs = [PairSeries {
            account: "bench",
            query: QueryType::Traffic,
            up: true,
            last_success_unix: Some(1.8e9),
            poll_duration_seconds: Some(0.1),
            bill_mode: Some(204),
            traffic_bill_modes: &[],
            packages: Some(&list),
        }];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("text", n), &n, |b, _| {
            b.iter(|| encode(black_box(&pairs), &metrics))
        });
        g.bench_with_input(BenchmarkId::new("text + gzip", n), &n, |b, _| {
            b.iter(|| Exposition::new(encode(black_box(&pairs), &metrics).into()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
