use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_signaling_proto::{
    ChannelInfo, ChannelNameCondition, ComparisonOperator, CreateSignalingChannelRequest,
    DeleteSignalingChannelRequest, ErrorType, JsonBody, MaxResults, MessageTtlSeconds, NextToken,
    SingleMasterConfiguration, Tag, TagKey, TagResourceRequest, TagValue, UntagResourceRequest,
    UpdateSignalingChannelRequest,
};

use super::*;
use crate::rng::SplitMix64;

const T0_MILLIS: u64 = 1_657_142_193_914;
const ARN_PREFIX: &str = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(T0_MILLIS)
}

fn registry() -> Registry {
    registry_with(RegistryConfig::default())
}

fn registry_with(config: RegistryConfig) -> Registry {
    Registry::new(config, SplitMix64::new(1)).unwrap()
}

fn name(text: &str) -> ChannelName {
    ChannelName::new(text).unwrap()
}

fn arn(text: &str) -> ChannelArn {
    ChannelArn::new(text).unwrap()
}

fn version(text: &str) -> Version {
    Version::new(text).unwrap()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::new(TagKey::new(key).unwrap(), TagValue::new(value).unwrap())
}

fn create(registry: &mut Registry, channel: &str) -> ChannelArn {
    let request = CreateSignalingChannelRequest::new(name(channel));
    registry
        .create(t0(), &request)
        .unwrap()
        .channel_arn
        .unwrap()
}

fn describe_by_name(name_: &str) -> DescribeSignalingChannelRequest {
    let mut request = DescribeSignalingChannelRequest::new();
    request.channel_name = Some(name(name_));
    request
}

fn describe_by_arn(arn_: &ChannelArn) -> DescribeSignalingChannelRequest {
    let mut request = DescribeSignalingChannelRequest::new();
    request.channel_arn = Some(arn_.clone());
    request
}

fn info(registry: &Registry, channel: &str) -> ChannelInfo {
    registry
        .describe(&describe_by_name(channel))
        .unwrap()
        .channel_info
        .unwrap()
}

fn json(body: &impl JsonBody) -> String {
    String::from_utf8(body.encode()).unwrap()
}

/// The error's type and message.
fn err<T: fmt::Debug>(result: Result<T, RegistryError>) -> (ErrorType, String) {
    let err = result.unwrap_err();
    (err.error_type(), err.to_string())
}

fn list(
    registry: &Registry,
    max: Option<u32>,
    token: Option<&str>,
    prefix: Option<&str>,
) -> (Vec<String>, Option<String>) {
    let mut request = ListSignalingChannelsRequest::new();
    request.max_results = max.map(|max| MaxResults::new(max).unwrap());
    request.next_token = token.map(|token| NextToken::new(token).unwrap());
    request.channel_name_condition = prefix.map(|prefix| {
        let mut condition = ChannelNameCondition::new();
        condition.comparison_operator = Some(ComparisonOperator::BeginsWith);
        condition.comparison_value = Some(name(prefix));
        condition
    });
    let response = registry.list(&request).unwrap();
    let names = response
        .channel_info_list
        .unwrap()
        .into_iter()
        .map(|info| info.channel_name.unwrap().to_string())
        .collect();
    (names, response.next_token.map(String::from))
}

fn list_tags(registry: &Registry, arn_: &ChannelArn) -> Vec<(String, String)> {
    let response = registry
        .list_tags_for_resource(&ListTagsForResourceRequest::new(arn_.clone()))
        .unwrap();
    response
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|&(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[test]
fn the_registry_is_send() {
    fn send<T: Send>(_: &T) {}
    send(&registry());
}

#[test]
fn create_then_describe_by_name_by_arn_and_by_both() {
    let mut registry = registry();
    let created = create(&mut registry, "demo");
    assert_eq!(created.as_str(), format!("{ARN_PREFIX}demo/1657142193914"));
    assert_eq!(registry.len(), 1);

    let expected = concat!(
        r#"{"ChannelInfo":{"ChannelARN":"arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo/1657142193914","#,
        r#""ChannelName":"demo","ChannelStatus":"ACTIVE","ChannelType":"SINGLE_MASTER","#,
        r#""CreationTime":1657142193.914,"SingleMasterConfiguration":{"MessageTtlSeconds":60},"#,
        r#""Version":"ju8bbv2gRxZlcgbKoyq2"}}"#
    );
    let mut both = describe_by_name("demo");
    both.channel_arn = Some(created.clone());
    for request in [describe_by_name("demo"), describe_by_arn(&created), both] {
        assert_eq!(json(&registry.describe(&request).unwrap()), expected);
    }

    let channel = registry.channel_by_arn(&created).unwrap();
    assert_eq!(registry.channel_by_name(&name("demo")), Some(channel));
    assert_eq!(channel.name().as_str(), "demo");
    assert_eq!(channel.arn(), &created);
    assert_eq!(channel.channel_type(), ChannelType::SingleMaster);
    assert_eq!(channel.status(), ChannelStatus::Active);
    assert_eq!(channel.message_ttl().get(), 60);
    assert_eq!(channel.version().as_str(), "ju8bbv2gRxZlcgbKoyq2");
    assert_eq!(channel.creation_time().unix_millis(), 1_657_142_193_914);
    assert!(channel.tags().is_empty());
    assert_eq!(
        Some(channel.info()),
        registry
            .describe(&describe_by_name("demo"))
            .unwrap()
            .channel_info
    );
}

#[test]
fn create_applies_ttl_and_tags_with_the_last_duplicate_winning() {
    let mut registry = registry_with(
        RegistryConfig::default().default_message_ttl(MessageTtlSeconds::new(90).unwrap()),
    );
    create(&mut registry, "default-ttl");
    assert_eq!(
        registry
            .channel_by_name(&name("default-ttl"))
            .unwrap()
            .message_ttl()
            .get(),
        90
    );

    let mut request = CreateSignalingChannelRequest::new(name("tagged"));
    request.channel_type = Some(ChannelType::SingleMaster);
    let mut ttl = SingleMasterConfiguration::new();
    ttl.message_ttl_seconds = Some(MessageTtlSeconds::new(5).unwrap());
    request.single_master_configuration = Some(ttl);
    request.tags = Some(vec![tag("a", "1"), tag("b", "2"), tag("a", "3")]);
    let created = registry
        .create(t0(), &request)
        .unwrap()
        .channel_arn
        .unwrap();
    assert_eq!(
        registry
            .channel_by_arn(&created)
            .unwrap()
            .message_ttl()
            .get(),
        5
    );
    assert_eq!(
        list_tags(&registry, &created),
        pairs(&[("a", "3"), ("b", "2")])
    );
}

#[test]
fn create_errors() {
    let mut registry = registry_with(RegistryConfig::default().max_channels(2));
    create(&mut registry, "demo");
    let mut full_mesh = CreateSignalingChannelRequest::new(name("mesh"));
    full_mesh.channel_type = Some(ChannelType::FullMesh);
    let cases = [
        (
            CreateSignalingChannelRequest::new(name("demo")),
            ErrorType::ResourceInUseException,
            "ChannelName demo is already in use",
        ),
        (
            full_mesh,
            ErrorType::InvalidArgumentException,
            "ChannelType FULL_MESH is not supported; the only supported type is SINGLE_MASTER",
        ),
    ];
    for (request, error_type, message) in cases {
        assert_eq!(
            err(registry.create(t0(), &request)),
            (error_type, message.to_owned())
        );
    }
    assert_eq!(registry.len(), 1);

    create(&mut registry, "second");
    assert_eq!(
        err(registry.create(t0(), &CreateSignalingChannelRequest::new(name("third")))),
        (
            ErrorType::AccountChannelLimitExceededException,
            "the account already has 2 signaling channels, its limit".to_owned()
        )
    );
    // A taken name is reported before the limit.
    assert_eq!(
        err(registry.create(t0(), &CreateSignalingChannelRequest::new(name("demo")))).0,
        ErrorType::ResourceInUseException
    );
    assert_eq!(
        ErrorType::AccountChannelLimitExceededException.http_status(),
        400
    );
}

#[test]
fn describe_errors() {
    let mut registry = registry();
    let demo = create(&mut registry, "demo");
    let stale = arn(&format!("{ARN_PREFIX}demo/1657142193000"));
    let mut mismatched = describe_by_name("other");
    mismatched.channel_arn = Some(demo.clone());
    let cases = [
        (
            DescribeSignalingChannelRequest::new(),
            ErrorType::InvalidArgumentException,
            "either ChannelName or ChannelARN must be given".to_owned(),
        ),
        (
            mismatched,
            ErrorType::InvalidArgumentException,
            format!("ChannelName other does not match ChannelARN {demo}"),
        ),
        (
            describe_by_name("missing"),
            ErrorType::ResourceNotFoundException,
            "The requested channel is not found or not active: ChannelName missing".to_owned(),
        ),
        (
            describe_by_arn(&stale),
            ErrorType::ResourceNotFoundException,
            format!("The requested channel is not found or not active: ChannelARN {stale}"),
        ),
    ];
    for (request, error_type, message) in cases {
        assert_eq!(err(registry.describe(&request)), (error_type, message));
    }
    assert_eq!(ErrorType::ResourceNotFoundException.http_status(), 404);
}

#[test]
fn list_pages_in_name_order() {
    let mut registry = registry();
    for channel in ["delta", "alpha", "echo", "charlie", "bravo"] {
        create(&mut registry, channel);
    }
    let all: Vec<String> = ["alpha", "bravo", "charlie", "delta", "echo"]
        .map(String::from)
        .into();
    assert_eq!(list(&registry, None, None, None), (all.clone(), None));
    assert_eq!(list(&registry, Some(5), None, None), (all, None));
    assert_eq!(list(&registry, Some(5), Some(""), None).1, None);

    let first = list(&registry, Some(2), None, None);
    assert_eq!(
        first,
        (
            vec!["alpha".into(), "bravo".into()],
            Some("YnJhdm8=".into())
        )
    );
    let second = list(&registry, Some(2), first.1.as_deref(), None);
    assert_eq!(
        second,
        (
            vec!["charlie".into(), "delta".into()],
            Some("ZGVsdGE=".into())
        )
    );
    let last = list(&registry, Some(2), second.1.as_deref(), None);
    assert_eq!(last, (vec!["echo".into()], None));

    // The token resumes after the name even when that channel is gone.
    let bravo = registry
        .channel_by_name(&name("bravo"))
        .unwrap()
        .arn()
        .clone();
    registry
        .delete(&DeleteSignalingChannelRequest::new(bravo))
        .unwrap();
    assert_eq!(
        list(&registry, Some(2), Some("YnJhdm8="), None).0,
        ["charlie", "delta"]
    );
}

#[test]
fn list_tokens_resume_for_every_name_length() {
    let mut registry = registry();
    let names = ["a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg"];
    for channel in names {
        create(&mut registry, channel);
    }
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = list(&registry, Some(1), token.as_deref(), None);
        seen.extend(page);
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, names);
}

#[test]
fn list_filters_by_prefix() {
    let mut registry = registry();
    for channel in ["door", "cam-2", "camera", "cam-1", "ca", "cb"] {
        create(&mut registry, channel);
    }
    assert_eq!(
        list(&registry, None, None, Some("cam")),
        (vec!["cam-1".into(), "cam-2".into(), "camera".into()], None)
    );
    assert_eq!(list(&registry, None, None, Some("zzz")), (vec![], None));
    let first = list(&registry, Some(1), None, Some("cam-"));
    assert_eq!(first, (vec!["cam-1".into()], Some("Y2FtLTE=".into())));
    assert_eq!(
        list(&registry, Some(1), first.1.as_deref(), Some("cam-")),
        (vec!["cam-2".into()], None)
    );
    // A token from before the prefix's range starts at the prefix.
    assert_eq!(
        list(&registry, None, Some("YQ=="), Some("cam-")).0,
        ["cam-1", "cam-2"]
    );
    // Without an operator the value still filters: BEGINS_WITH is the only comparison.
    let mut request = ListSignalingChannelsRequest::new();
    let mut condition = ChannelNameCondition::new();
    condition.comparison_value = Some(name("d"));
    request.channel_name_condition = Some(condition);
    assert_eq!(
        registry
            .list(&request)
            .unwrap()
            .channel_info_list
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn list_rejects_tokens_it_did_not_issue() {
    let registry = registry();
    for token in [
        "abc", "////", "Pz8/", "A=B=", "YQ==YQ==", "Y===", "YR==", "YQ", "Lw==",
    ] {
        let mut request = ListSignalingChannelsRequest::new();
        request.next_token = Some(NextToken::new(token).unwrap());
        assert_eq!(
            err(registry.list(&request)),
            (
                ErrorType::InvalidArgumentException,
                format!("NextToken {token:?} is not a token this service issued")
            ),
            "{token}"
        );
    }
}

#[test]
fn update_checks_the_version_then_changes_ttl_and_version() {
    let mut registry = registry();
    let demo = create(&mut registry, "demo");
    let old = registry.channel_by_arn(&demo).unwrap().version().clone();

    let stale = UpdateSignalingChannelRequest::new(demo.clone(), version("abc"));
    assert_eq!(
        err(registry.update(&stale)),
        (
            ErrorType::VersionMismatchException,
            format!("CurrentVersion abc does not match the channel's version {old}")
        )
    );
    let missing = arn(&format!("{ARN_PREFIX}missing/1"));
    assert_eq!(
        err(registry.update(&UpdateSignalingChannelRequest::new(
            missing.clone(),
            old.clone()
        ))),
        (
            ErrorType::ResourceNotFoundException,
            format!("The requested channel is not found or not active: ChannelARN {missing}")
        )
    );
    assert_eq!(registry.channel_by_arn(&demo).unwrap().version(), &old);

    let mut request = UpdateSignalingChannelRequest::new(demo.clone(), old.clone());
    let mut ttl = SingleMasterConfiguration::new();
    ttl.message_ttl_seconds = Some(MessageTtlSeconds::new(120).unwrap());
    request.single_master_configuration = Some(ttl);
    assert_eq!(json(&registry.update(&request).unwrap()), "{}");
    let updated = info(&registry, "demo");
    assert_eq!(
        updated
            .single_master_configuration
            .unwrap()
            .message_ttl_seconds
            .unwrap()
            .get(),
        120
    );
    let new = updated.version.unwrap();
    assert_eq!(new.as_str(), "EFeHRCfsC9lkYbPghuyp");
    assert_eq!(updated.channel_arn, Some(demo.clone()));

    // The old version is now stale; an update without a configuration keeps the TTL.
    assert_eq!(
        err(registry.update(&request)).0,
        ErrorType::VersionMismatchException
    );
    registry
        .update(&UpdateSignalingChannelRequest::new(
            demo.clone(),
            new.clone(),
        ))
        .unwrap();
    let channel = registry.channel_by_arn(&demo).unwrap();
    assert_eq!(channel.message_ttl().get(), 120);
    assert_ne!(channel.version(), &new);
}

#[test]
fn delete_checks_the_version_and_returns_the_channel() {
    let mut registry = registry();
    let demo = create(&mut registry, "demo");
    create(&mut registry, "other");
    let current = registry.channel_by_arn(&demo).unwrap().version().clone();

    let mut stale = DeleteSignalingChannelRequest::new(demo.clone());
    stale.current_version = Some(version("abc"));
    assert_eq!(
        err(registry.delete(&stale)),
        (
            ErrorType::VersionMismatchException,
            format!("CurrentVersion abc does not match the channel's version {current}")
        )
    );
    assert_eq!(registry.len(), 2);

    let mut request = DeleteSignalingChannelRequest::new(demo.clone());
    request.current_version = Some(current);
    let removed = registry.delete(&request).unwrap();
    assert_eq!(removed.arn(), &demo);
    assert_eq!(registry.len(), 1);
    assert_eq!(registry.channel_by_arn(&demo), None);
    let not_found = (
        ErrorType::ResourceNotFoundException,
        format!("The requested channel is not found or not active: ChannelARN {demo}"),
    );
    assert_eq!(err(registry.delete(&request)), not_found);
    assert_eq!(err(registry.describe(&describe_by_arn(&demo))), not_found);
    assert_eq!(
        err(registry.describe(&describe_by_name("demo"))).0,
        ErrorType::ResourceNotFoundException
    );

    // Without a version the latest is deleted.
    let other = registry
        .channel_by_name(&name("other"))
        .unwrap()
        .arn()
        .clone();
    registry
        .delete(&DeleteSignalingChannelRequest::new(other))
        .unwrap();
    assert!(registry.is_empty());
}

#[test]
fn a_channel_recreated_in_the_same_millisecond_gets_a_new_arn() {
    let mut registry = registry();
    let first = create(&mut registry, "demo");
    registry
        .delete(&DeleteSignalingChannelRequest::new(first.clone()))
        .unwrap();
    let second = create(&mut registry, "demo");
    assert_eq!(second.as_str(), format!("{ARN_PREFIX}demo/1657142193915"));
    assert_eq!(registry.channel_by_arn(&first), None);
    assert_eq!(
        info(&registry, "demo").creation_time.unwrap().unix_millis(),
        1_657_142_193_915
    );

    // Once the clock has moved past the deleted ARN, creation uses the clock again.
    registry
        .delete(&DeleteSignalingChannelRequest::new(second))
        .unwrap();
    let later = t0() + Duration::from_secs(1);
    let third = registry
        .create(later, &CreateSignalingChannelRequest::new(name("demo")))
        .unwrap();
    assert_eq!(
        third.channel_arn.unwrap().as_str(),
        format!("{ARN_PREFIX}demo/1657142194914")
    );
    // Different names in the same millisecond share the suffix.
    assert_eq!(create(&mut registry, "peer").suffix(), "1657142193914");
}

#[test]
fn tags_are_added_overwritten_removed_and_listed() {
    let mut registry = registry();
    let demo = create(&mut registry, "demo");
    let empty = registry
        .list_tags_for_resource(&ListTagsForResourceRequest::new(demo.clone()))
        .unwrap();
    assert_eq!(json(&empty), "{}");

    registry
        .tag_resource(&TagResourceRequest::new(
            demo.clone(),
            vec![tag("b", "1"), tag("a", "")],
        ))
        .unwrap();
    registry
        .tag_resource(&TagResourceRequest::new(
            demo.clone(),
            vec![tag("b", "2"), tag("c", "3")],
        ))
        .unwrap();
    assert_eq!(
        list_tags(&registry, &demo),
        pairs(&[("a", ""), ("b", "2"), ("c", "3")])
    );
    let response = registry
        .list_tags_for_resource(&ListTagsForResourceRequest::new(demo.clone()))
        .unwrap();
    assert_eq!(json(&response), r#"{"Tags":{"a":"","b":"2","c":"3"}}"#);

    let keys = ["a", "zzz"].map(|key| TagKey::new(key).unwrap()).to_vec();
    assert_eq!(
        json(
            &registry
                .untag_resource(&UntagResourceRequest::new(demo.clone(), keys))
                .unwrap()
        ),
        "{}"
    );
    assert_eq!(
        list_tags(&registry, &demo),
        pairs(&[("b", "2"), ("c", "3")])
    );

    let mut paged = ListTagsForResourceRequest::new(demo.clone());
    paged.next_token = Some(NextToken::new("").unwrap());
    assert!(registry.list_tags_for_resource(&paged).is_ok());
    paged.next_token = Some(NextToken::new("abcd").unwrap());
    assert_eq!(
        err(registry.list_tags_for_resource(&paged)),
        (
            ErrorType::InvalidArgumentException,
            r#"NextToken "abcd" is not a token this service issued"#.to_owned()
        )
    );

    let missing = arn(&format!("{ARN_PREFIX}missing/1"));
    let not_found = (
        ErrorType::ResourceNotFoundException,
        format!("The requested channel is not found or not active: ResourceARN {missing}"),
    );
    let key = vec![TagKey::new("b").unwrap()];
    assert_eq!(
        err(registry.tag_resource(&TagResourceRequest::new(
            missing.clone(),
            vec![tag("k", "v")]
        ))),
        not_found
    );
    assert_eq!(
        err(registry.untag_resource(&UntagResourceRequest::new(missing.clone(), key))),
        not_found
    );
    assert_eq!(
        err(registry.list_tags_for_resource(&ListTagsForResourceRequest::new(missing))),
        not_found
    );
}

#[test]
fn the_tag_limit_is_checked_before_anything_is_applied() {
    let mut registry = registry();
    let mut request = CreateSignalingChannelRequest::new(name("demo"));
    request.tags = Some((0..49).map(|i| tag(&format!("k{i:02}"), "v")).collect());
    let demo = registry
        .create(t0(), &request)
        .unwrap()
        .channel_arn
        .unwrap();
    let before = list_tags(&registry, &demo);
    assert_eq!(before.len(), 49);

    let two_new = TagResourceRequest::new(
        demo.clone(),
        vec![tag("k00", "changed"), tag("new1", "v"), tag("new2", "v")],
    );
    assert_eq!(
        err(registry.tag_resource(&two_new)),
        (
            ErrorType::TagsPerResourceExceededLimitException,
            "a channel may carry at most 50 tags; this request would leave 51".to_owned()
        )
    );
    assert_eq!(list_tags(&registry, &demo), before);

    let one_new =
        TagResourceRequest::new(demo.clone(), vec![tag("k00", "changed"), tag("new1", "v")]);
    registry.tag_resource(&one_new).unwrap();
    let after = list_tags(&registry, &demo);
    assert_eq!(after.len(), 50);
    assert_eq!(
        after.first(),
        Some(&("k00".to_owned(), "changed".to_owned()))
    );
}

#[test]
fn media_storage_is_disabled_for_existing_channels() {
    let mut registry = registry();
    let demo = create(&mut registry, "demo");
    let mut by_name = DescribeMediaStorageConfigurationRequest::new();
    by_name.channel_name = Some(name("demo"));
    let mut by_arn = DescribeMediaStorageConfigurationRequest::new();
    by_arn.channel_arn = Some(demo);
    for request in [by_name, by_arn] {
        let response = registry
            .describe_media_storage_configuration(&request)
            .unwrap();
        assert_eq!(
            json(&response),
            r#"{"MediaStorageConfiguration":{"Status":"DISABLED"}}"#
        );
    }

    let mut missing = DescribeMediaStorageConfigurationRequest::new();
    missing.channel_name = Some(name("missing"));
    assert_eq!(
        err(registry.describe_media_storage_configuration(&missing)),
        (
            ErrorType::ResourceNotFoundException,
            "The requested channel is not found or not active: ChannelName missing".to_owned()
        )
    );
    assert_eq!(
        err(
            registry.describe_media_storage_configuration(
                &DescribeMediaStorageConfigurationRequest::new()
            )
        )
        .0,
        ErrorType::InvalidArgumentException
    );
}

fn populated() -> Registry {
    let mut registry = registry();
    for channel in ["alpha", "bravo", "charlie"] {
        create(&mut registry, channel);
    }
    let bravo = registry
        .channel_by_name(&name("bravo"))
        .unwrap()
        .arn()
        .clone();
    registry
        .tag_resource(&TagResourceRequest::new(
            bravo.clone(),
            vec![tag("team", "video")],
        ))
        .unwrap();
    let current = registry.channel_by_arn(&bravo).unwrap().version().clone();
    let mut update = UpdateSignalingChannelRequest::new(bravo, current);
    let mut ttl = SingleMasterConfiguration::new();
    ttl.message_ttl_seconds = Some(MessageTtlSeconds::new(30).unwrap());
    update.single_master_configuration = Some(ttl);
    registry.update(&update).unwrap();
    registry
}

#[test]
fn snapshot_restores_the_same_answers_and_survives_json() {
    let registry = populated();
    let snapshot = registry.snapshot();
    let text = serde_json::to_string(&snapshot).unwrap();
    let decoded: RegistrySnapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(decoded, snapshot);

    let restored =
        Registry::restore(RegistryConfig::default(), SplitMix64::new(2), decoded).unwrap();
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(restored.len(), 3);
    let everything = ListSignalingChannelsRequest::new();
    assert_eq!(
        restored.list(&everything).unwrap(),
        registry.list(&everything).unwrap()
    );
    for channel in registry.channels() {
        let request = describe_by_arn(channel.arn());
        assert_eq!(
            restored.describe(&request).unwrap(),
            registry.describe(&request).unwrap()
        );
        let tags = ListTagsForResourceRequest::new(channel.arn().clone());
        assert_eq!(
            restored.list_tags_for_resource(&tags).unwrap(),
            registry.list_tags_for_resource(&tags).unwrap()
        );
    }
    assert_eq!(
        restored
            .channel_by_name(&name("bravo"))
            .unwrap()
            .message_ttl()
            .get(),
        30
    );
    assert!(
        Registry::restore(
            RegistryConfig::default(),
            SplitMix64::new(2),
            RegistrySnapshot::default()
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn restore_rejects_inconsistent_snapshots() {
    let good = populated().snapshot();
    let bravo = name("bravo");

    let mut duplicate = good.clone();
    duplicate.channels.push(duplicate.channels[1].clone());
    let mut bad_arn = good.clone();
    bad_arn.channels[1].creation_millis += 1;
    let mut many_tags = good.clone();
    many_tags.channels[1].tags = (0..51)
        .map(|i| {
            (
                TagKey::new(format!("k{i}")).unwrap(),
                TagValue::new("v").unwrap(),
            )
        })
        .collect();
    let bravo_arn = good.channels[1].arn.clone();

    let cases = [
        (
            RegistryConfig::default(),
            duplicate,
            RestoreError::DuplicateName {
                name: bravo.clone(),
            },
            "channel bravo appears more than once".to_owned(),
        ),
        (
            RegistryConfig::default(),
            bad_arn,
            RestoreError::ArnMismatch {
                name: bravo.clone(),
                arn: bravo_arn.clone(),
            },
            format!(
                "channel bravo: ChannelARN {bravo_arn} does not match its name, creation time and the configured partition, region and account"
            ),
        ),
        (
            RegistryConfig::default().region("eu-west-1"),
            good.clone(),
            RestoreError::ArnMismatch {
                name: name("alpha"),
                arn: good.channels[0].arn.clone(),
            },
            format!(
                "channel alpha: ChannelARN {} does not match its name, creation time and the configured partition, region and account",
                good.channels[0].arn
            ),
        ),
        (
            RegistryConfig::default(),
            many_tags,
            RestoreError::TooManyTags {
                name: bravo,
                max: 50,
                found: 51,
            },
            "channel bravo carries 51 tags; at most 50 are allowed".to_owned(),
        ),
        (
            RegistryConfig::default().account_id("1"),
            good,
            RestoreError::Config(RegistryConfigError::AccountId { found: "1".into() }),
            r#"account id "1" must be 12 digits"#.to_owned(),
        ),
    ];
    for (config, snapshot, expected, message) in cases {
        let err = Registry::restore(config, SplitMix64::new(1), snapshot).unwrap_err();
        assert_eq!((&err, err.to_string()), (&expected, message));
    }
}

#[test]
fn restore_accepts_more_channels_than_the_limit_but_refuses_to_create() {
    let snapshot = populated().snapshot();
    let mut restored = Registry::restore(
        RegistryConfig::default().max_channels(2),
        SplitMix64::new(1),
        snapshot,
    )
    .unwrap();
    assert_eq!(restored.len(), 3);
    assert_eq!(
        err(restored.create(t0(), &CreateSignalingChannelRequest::new(name("delta")))).0,
        ErrorType::AccountChannelLimitExceededException
    );
}

#[test]
fn config_is_validated() {
    let long = "a".repeat(64);
    let cases = [
        (
            RegistryConfig::default().partition(""),
            r#"partition "" must be 1 to 63 characters of [a-z0-9-]"#,
        ),
        (
            RegistryConfig::default().partition("AWS"),
            r#"partition "AWS" must be 1 to 63 characters of [a-z0-9-]"#,
        ),
        (
            RegistryConfig::default().region("us_west_2"),
            r#"region "us_west_2" must be 1 to 63 characters of [a-z0-9-]"#,
        ),
        (
            RegistryConfig::default().region(long.as_str()),
            &format!("region {long:?} must be 1 to 63 characters of [a-z0-9-]"),
        ),
        (
            RegistryConfig::default().account_id("12345678901"),
            r#"account id "12345678901" must be 12 digits"#,
        ),
        (
            RegistryConfig::default().account_id("12345678901x"),
            r#"account id "12345678901x" must be 12 digits"#,
        ),
    ];
    for (config, message) in cases {
        assert_eq!(
            Registry::new(config, SplitMix64::new(1))
                .unwrap_err()
                .to_string(),
            message
        );
    }

    let config = RegistryConfig::default()
        .partition("aws-cn")
        .region("cn-north-1")
        .account_id("000000000000");
    let mut registry = registry_with(config.clone());
    assert_eq!(registry.config(), &config);
    assert_eq!(
        create(&mut registry, "demo").as_str(),
        "arn:aws-cn:kinesisvideo:cn-north-1:000000000000:channel/demo/1657142193914"
    );
}

#[test]
fn versions_are_deterministic_alphanumeric_and_20_long() {
    let mut a = registry();
    let mut b = registry();
    for i in 0..20 {
        let channel = format!("c{i}");
        create(&mut a, &channel);
        create(&mut b, &channel);
    }
    let versions = |registry: &Registry| -> Vec<String> {
        registry
            .channels()
            .map(|c| c.version().to_string())
            .collect()
    };
    assert_eq!(versions(&a), versions(&b));
    for version in versions(&a) {
        assert_eq!(version.len(), 20);
        assert!(
            version.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{version}"
        );
    }
}

/// Regressions found in review.
mod review {
    use super::*;

    /// A generator that repeats itself cannot make an update loop forever.
    #[derive(Debug)]
    struct Stuck;

    impl Rng for Stuck {
        fn next_u64(&mut self) -> u64 {
            0
        }
    }

    #[test]
    fn a_repeating_rng_still_changes_the_version() {
        let mut registry = Registry::new(RegistryConfig::default(), Stuck).unwrap();
        let name = ChannelName::new("demo").unwrap();
        let now = UNIX_EPOCH + Duration::from_millis(1_657_142_193_914);
        let arn = registry
            .create(now, &CreateSignalingChannelRequest::new(name.clone()))
            .unwrap()
            .channel_arn
            .unwrap();
        let before = registry.channel_by_name(&name).unwrap().version().clone();
        registry
            .update(&UpdateSignalingChannelRequest::new(arn, before.clone()))
            .unwrap();
        let after = registry.channel_by_name(&name).unwrap().version().clone();
        assert_ne!(before, after);
    }

    #[test]
    fn the_tag_limit_is_configurable() {
        let mut registry = Registry::new(
            RegistryConfig::default().max_tags_per_resource(1),
            SplitMix64::new(1),
        )
        .unwrap();
        let mut request = CreateSignalingChannelRequest::new(ChannelName::new("demo").unwrap());
        request.tags = Some(vec![
            Tag::new(TagKey::new("a").unwrap(), TagValue::new("1").unwrap()),
            Tag::new(TagKey::new("b").unwrap(), TagValue::new("2").unwrap()),
        ]);
        let err = registry.create(UNIX_EPOCH, &request).unwrap_err();
        assert_eq!(
            err.error_type(),
            ErrorType::TagsPerResourceExceededLimitException
        );
        assert!(registry.is_empty());
    }
}

/// Issue 11: a staged change leaves the registry as it was until committed, so that a server
/// can save it first and drop it when the save fails.
#[test]
fn staged_changes_apply_only_when_committed() {
    let mut registry = registry();
    let request = CreateSignalingChannelRequest::new(name("staged"));
    let (response, change) = registry.stage_create(t0(), &request).unwrap();
    assert!(registry.channel_by_name(&name("staged")).is_none());
    assert_eq!(change.name(), &name("staged"));
    // Dropped (the save failed): nothing happened, and the name is still free.
    drop(change);
    let (_, change) = registry.stage_create(t0(), &request).unwrap();
    registry.commit(change.clone()).unwrap();
    let arn = response.channel_arn.unwrap();
    let record = registry.channel_by_arn(&arn).unwrap().clone();
    assert_eq!(record.revision(), 0);
    // Committing the same creation twice is refused: the name is taken meanwhile.
    assert!(matches!(
        registry.commit(change),
        Err(RegistryError::StaleChange { .. })
    ));

    let mut ttl = SingleMasterConfiguration::new();
    ttl.message_ttl_seconds = Some(MessageTtlSeconds::new(10).unwrap());
    let mut update = UpdateSignalingChannelRequest::new(arn.clone(), record.version().clone());
    update.single_master_configuration = Some(ttl);
    let (_, first) = registry.stage_update(&update).unwrap();
    assert_eq!(
        registry.channel_by_arn(&arn).unwrap().message_ttl().get(),
        60
    );
    let (_, second) = registry.stage_update(&update).unwrap();
    registry.commit(first).unwrap();
    let updated = registry.channel_by_arn(&arn).unwrap().clone();
    assert_eq!(updated.message_ttl().get(), 10);
    assert_eq!(
        updated.revision(),
        1,
        "a later configuration has a higher revision"
    );
    assert_ne!(updated.version(), record.version());
    // A change staged against the version the first commit replaced is refused.
    assert!(matches!(
        registry.commit(second),
        Err(RegistryError::StaleChange { .. })
    ));

    // Tags change the revision, not the version.
    let (_, tagged) = registry
        .stage_tag_resource(&TagResourceRequest::new(arn.clone(), vec![tag("k", "v")]))
        .unwrap();
    registry.commit(tagged).unwrap();
    let after = registry.channel_by_arn(&arn).unwrap();
    assert_eq!(after.version(), updated.version());
    assert_eq!(after.revision(), 2);

    let delete = DeleteSignalingChannelRequest::new(arn.clone());
    let (_, removal) = registry.stage_delete(&delete).unwrap();
    assert!(registry.channel_by_arn(&arn).is_some());
    registry.commit(removal).unwrap();
    assert!(registry.channel_by_arn(&arn).is_none());
}
