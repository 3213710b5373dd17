//! Messages to contacts, groups and numbers with their status, and polls.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_contacts_a_group_and_numbers_and_its_status_lists_each() {
    let web = Web::start(common::WEB_PIPELINE).await;
    let ada = web
        .contact(json!({"name": "Ada", "groups": ["staff"], "connections": [{"identity": "+15550001111"}]}))
        .await;
    web.contact(
        json!({"name": "Bob", "groups": ["staff"], "connections": [{"identity": "+15550002222"}]}),
    )
    .await;
    let carol = web
        .contact(json!({"name": "Carol", "connections": [{"identity": "+15550003333"}]}))
        .await;
    let nobody = web.contact(json!({"name": "Nobody"})).await;

    let (status, sent) = web
        .post(
            "/api/messages",
            json!({
                "text": "Meeting at 10",
                // Ada is both chosen and in the group: she gets one message.
                "contacts": [carol["id"], ada["id"]],
                "groups": ["staff"],
                "numbers": ["+15550004444", "message_tester:+1 555 000 5555"]
            }),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["recipients"], 5);
    assert_eq!(
        sent["confirmation"],
        "Your message was sent to 5 recipients."
    );
    assert_eq!(sent["message_ids"].as_array().unwrap().len(), 5);
    let phones = [
        "+15550001111",
        "+15550002222",
        "+15550003333",
        "+15550004444",
        "+15550005555",
    ];
    for phone in phones {
        assert_eq!(web.received(phone, 1).await, ["Meeting at 10"], "{phone}");
    }

    let send_id = sent["send_id"].as_str().unwrap();
    let path = format!("/api/status/{send_id}");
    let (_, report) = until(
        || web.get(&path),
        |(s, r)| *s == 200 && r["counts"]["delivered"] == 5,
    )
    .await;
    assert_eq!(report["counts"], json!({"delivered": 5}), "{report}");
    assert_eq!(report["kind"], "send");
    assert_eq!(report["id"], send_id);
    let mut numbers: Vec<&str> = report["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["connection"]["identity"].as_str().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, phones);
    let one = sent["message_ids"][0].as_str().unwrap();
    let (status, message) = web.get(&format!("/api/status/{one}")).await;
    assert_eq!(status, 200);
    assert_eq!(message["kind"], "message");
    assert_eq!(message["recipients"][0]["send_id"], send_id);

    let (status, single) = web
        .post(
            "/api/messages",
            json!({"text": "Just you", "numbers": ["+15550004444"]}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        single["confirmation"],
        "Your message was sent to 1 recipient."
    );
    assert_eq!(
        web.received("+15550004444", 2).await,
        ["Meeting at 10", "Just you"]
    );

    let bad = [
        (json!({"text": "hi"}), "recipients", "no recipients"),
        (json!({"numbers": ["+1555"]}), "text", "empty"),
        (json!({"text": "  ", "numbers": ["+1555"]}), "text", "empty"),
        (
            json!({"text": "hi", "contacts": ["nope"]}),
            "contacts",
            "no contact with id \"nope\"",
        ),
        (
            json!({"text": "hi", "contacts": [nobody["id"]]}),
            "contacts",
            "no phone number",
        ),
        (
            json!({"text": "hi", "groups": ["band"]}),
            "groups",
            "no contact is in group \"band\"",
        ),
        (
            json!({"text": "hi", "numbers": ["call me"]}),
            "numbers",
            "is not a phone number",
        ),
        (
            json!({"text": "hi", "numbers": ["kannel:+1555"]}),
            "numbers",
            "no backend \"kannel\"",
        ),
        (
            json!({"text": "hi", "numbers": "+1555"}),
            "numbers",
            "expected a sequence",
        ),
        (json!({"message": "hi"}), "message", "unknown field"),
    ];
    for (body, field, words) in bad {
        let answer = web.post("/api/messages", body.clone()).await;
        assert_refused(&answer, 400, field, words);
    }
    let (status, answer) = web
        .post_raw("/api/messages", "application/json", "{\"text\": ")
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("EOF"),
        "{answer}"
    );

    let (status, missing) = web.get("/api/status/no-such-id").await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"], "no message or send with id no-such-id");
    web.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_results_follow_the_answers_and_the_question_goes_out_in_each_language() {
    let web = Web::start(common::WEB_PIPELINE).await;
    let (status, polls) = web.get("/api/polls").await;
    assert_eq!(status, 200);
    assert_eq!(
        polls,
        json!({"polls": [{
            "name": "lunch",
            "question": "What do you want for lunch?",
            "choices": ["pizza", "salad", "soup"],
            "results": {
                "poll": "lunch",
                "question": "What do you want for lunch?",
                "choices": [["pizza", 0], ["salad", 0], ["soup", 0]],
                "total": 0
            }
        }]})
    );

    web.phone_sends("+15550001111", "lunch pizza").await;
    web.phone_sends("+15550002222", "LUNCH Pizza").await;
    web.phone_sends("+15550003333", "lunch salad").await;
    web.phone_sends("+15550004444", "lunch sushi").await;
    assert_eq!(
        web.received("+15550004444", 1).await,
        ["Sorry, \"sushi\" is not a choice. Reply LUNCH and one of: pizza, salad, soup."]
    );
    let results = |pizza: i64, salad: i64| {
        json!({
            "poll": "lunch",
            "question": "What do you want for lunch?",
            "choices": [["pizza", pizza], ["salad", salad], ["soup", 0]],
            "total": pizza + salad
        })
    };
    let (_, seen) = until(|| web.get("/api/polls/lunch"), |(_, r)| *r == results(2, 1)).await;
    assert_eq!(seen, results(2, 1));
    // Answering again changes the answer.
    web.phone_sends("+15550001111", "lunch salad").await;
    let (_, seen) = until(|| web.get("/api/polls/lunch"), |(_, r)| *r == results(1, 2)).await;
    assert_eq!(seen, results(1, 2));
    let (_, list) = web.get("/api/polls").await;
    assert_eq!(list["polls"][0]["results"], results(1, 2));

    let (status, missing) = web.get("/api/polls/dinner").await;
    assert_eq!(status, 404);
    assert!(missing["error"].as_str().unwrap().contains("polls: lunch"));

    web.contact(json!({"name": "Amélie", "language": "fr", "groups": ["team"], "connections": [{"identity": "+15550006666"}]}))
        .await;
    web.contact(
        json!({"name": "Bob", "groups": ["team"], "connections": [{"identity": "+15550007777"}]}),
    )
    .await;
    let (status, sent) = web
        .post("/api/polls/lunch/send", json!({"groups": ["team"]}))
        .await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(
        sent["confirmation"],
        "Your message was sent to 2 recipients."
    );
    assert_eq!(
        web.received("+15550006666", 1).await,
        ["Que voulez-vous pour le déjeuner ? Reply LUNCH and one of: pizza, salad, soup."]
    );
    assert_eq!(
        web.received("+15550007777", 1).await,
        ["What do you want for lunch? Reply LUNCH and one of: pizza, salad, soup."]
    );
    let path = format!("/api/status/{}", sent["send_id"].as_str().unwrap());
    let (status, report) = until(|| web.get(&path), |(s, _)| *s == 200).await;
    assert_eq!(status, 200, "the poll's send has no status: {report}");
    assert_eq!(report["kind"], "send");
    // The message log has the broadcast as the poll's.
    let (_, log) = until(
        || web.get("/api/log?number=6666&direction=out"),
        |(_, l)| l["total"] == 1,
    )
    .await;
    assert_eq!(log["entries"][0]["app"], "lunch", "{log}");

    let answer = web.post("/api/polls/lunch/send", json!({})).await;
    assert_refused(&answer, 400, "recipients", "no recipients");
    let answer = web
        .post(
            "/api/polls/lunch/send",
            json!({"text": "hi", "groups": ["team"]}),
        )
        .await;
    assert_refused(&answer, 400, "text", "unknown field");
    let (status, _) = web
        .post("/api/polls/dinner/send", json!({"groups": ["team"]}))
        .await;
    assert_eq!(status, 404);
    web.running.shutdown().await.unwrap();
}
