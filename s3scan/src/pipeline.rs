//! What happens to one object version in worker and rescan mode: read its tags (skip it when
//! our tag already records this database or a newer one), GET and scan it, write the merged
//! tags (by version id), then for THREATS_FOUND move it to quarantine and send its findings.
//! The [`Outcome`] says whether the SQS message may be deleted ([`Outcome::settled`]).

use aws_sdk_s3::types::{Tag, Tagging};

use crate::event::ObjectRef;
use crate::findings::FindingsSink;
use crate::object::{self, classify_http, Failure, ScanSettings, Scanned, Verdict};
use crate::quarantine::{move_object, QuarantineTarget};
use crate::tags::{Merged, ScanStatus, TagSettings};

/// Everything a worker needs per object; shared by its tasks.
pub struct Pipeline {
    pub s3: aws_sdk_s3::Client,
    pub scan: ScanSettings,
    pub tags: TagSettings,
    pub quarantine: Option<QuarantineTarget>,
    pub findings: Option<FindingsSink>,
}

/// What became of one object.
#[derive(Debug)]
pub enum Outcome {
    /// Scanned and tagged with `status`.
    Tagged {
        status: ScanStatus,
        scanned: Box<Scanned>,
        /// Where it was moved, for THREATS_FOUND with a quarantine bucket.
        quarantined: Option<String>,
        /// Something to say beside the verdict (the db-version tag left out, a quarantine
        /// or findings failure).
        note: Option<String>,
    },
    /// Our tag already records this database (or a newer one): not scanned again. With
    /// `quarantined`, an infected object a crashed worker tagged but did not move was moved.
    AlreadyTagged {
        status: ScanStatus,
        quarantined: Option<String>,
    },
    /// Deleted before its scan (or before its tag).
    Gone(String),
    /// Not scanned on purpose (a copy in the quarantine prefix).
    Ignored(&'static str),
    /// Try again later: leave the message.
    Retry(String),
    /// Scanned but the tag cannot be written (no room among 10 tags, tags unreadable): an
    /// error, and retrying cannot help.
    Untaggable(String),
}

impl Outcome {
    /// Whether the message that named this object may be deleted.
    pub fn settled(&self) -> bool {
        !matches!(self, Outcome::Retry(_))
    }
}

type TagList = Vec<(String, String)>;

impl Pipeline {
    pub fn db_version(&self) -> u64 {
        self.scan.engine.db_version()
    }

    async fn read_tags(&self, obj: &ObjectRef) -> Result<TagList, (Failure, String)> {
        let out = self
            .s3
            .get_object_tagging()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(obj.version_id.clone())
            .send()
            .await
            .map_err(|e| classify_http(&e))?;
        Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }

    async fn write_tags(
        &self,
        obj: &ObjectRef,
        version: Option<String>,
        tags: TagList,
    ) -> Result<(), (Failure, String)> {
        let set = tags
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| (Failure::Permanent, e.to_string()))?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(|e| (Failure::Permanent, e.to_string()))?;
        self.s3
            .put_object_tagging()
            .bucket(&obj.bucket)
            .key(&obj.key)
            .set_version_id(version)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| classify_http(&e))?;
        Ok(())
    }

    /// Processes `obj`. On the `last` attempt (the message's receive count reached the
    /// worker's maximum) what would be retried is tagged FAILED instead.
    pub async fn process(&self, obj: &ObjectRef, last: bool) -> Outcome {
        let db = self.db_version();
        if let Some(q) = &self.quarantine {
            if q.holds(obj) {
                return Outcome::Ignored("in the quarantine prefix");
            }
        }
        let existing = match self.read_tags(obj).await {
            Ok(t) => t,
            Err((Failure::Gone, m)) => return Outcome::Gone(m),
            // PutObjectTagging replaces every tag: without the owner's, ours would erase them.
            Err((_, m)) if last => {
                return Outcome::Untaggable(format!("reading its tags: {m}; not tagged"))
            }
            Err((_, m)) => return Outcome::Retry(format!("reading its tags: {m}")),
        };
        if let (Some(status), Some(tagged_db)) = self.tags.read(&existing) {
            if tagged_db >= db {
                let mut quarantined = None;
                if let (ScanStatus::ThreatsFound, Some(q)) = (status, &self.quarantine) {
                    // Tagged by a worker that stopped before the move: move it now.
                    match move_object(&self.s3, q, obj, 0).await {
                        Ok(u) => quarantined = Some(u),
                        Err(e) => return Outcome::Retry(format!("quarantine: {e}")),
                    }
                }
                return Outcome::AlreadyTagged {
                    status,
                    quarantined,
                };
            }
        }
        let scanned = object::scan(&self.s3, &self.scan, obj).await;
        let status = match &scanned.verdict {
            Verdict::Gone(m) => return Outcome::Gone(m.clone()),
            Verdict::Retry(m) if !last => return Outcome::Retry(m.clone()),
            Verdict::Retry(_) => ScanStatus::Failed,
            v => v.status().unwrap_or(ScanStatus::Failed),
        };
        let version = obj.version_id.clone().or(scanned.version_id.clone());
        let mut note = None;
        let tags = match self.tags.merge(&existing, status, db) {
            Merged::Full(t) => t,
            Merged::WithoutDbVersion(t) => {
                note = Some(format!(
                    "9 tags of its own: {} left out (S3 allows 10)",
                    self.tags.db_key
                ));
                t
            }
            Merged::NoRoom { own } => {
                return Outcome::Untaggable(format!(
                    "{status}, but it has {own} tags of its own and S3 allows 10: no room for {}; not tagged",
                    self.tags.status_key
                ))
            }
        };
        match self.write_tags(obj, version.clone(), tags).await {
            Ok(()) => {}
            Err((Failure::Gone, m)) => return Outcome::Gone(m),
            Err((Failure::Transient, m)) if !last => {
                return Outcome::Retry(format!("writing its tags: {m}"))
            }
            Err((_, m)) => return Outcome::Untaggable(format!("{status}: writing its tags: {m}")),
        }
        let mut quarantined = None;
        if status == ScanStatus::ThreatsFound {
            if let Some(q) = &self.quarantine {
                let at = ObjectRef {
                    version_id: version,
                    ..obj.clone()
                };
                match move_object(&self.s3, q, &at, scanned.size).await {
                    Ok(u) => quarantined = Some(u),
                    // Tagged already: a redelivery finds the tag and tries the move again.
                    Err(e) if !last => return Outcome::Retry(format!("quarantine: {e}")),
                    Err(e) => note = Some(format!("not quarantined: {e}")),
                }
            }
            if let Some(f) = &self.findings {
                if let Err(e) = f.record(&obj.url(), &scanned, db, quarantined.is_some()) {
                    tracing::error!(object = %obj.url(), error = %e, "findings not recorded");
                    note = Some(format!("findings not recorded: {e}"));
                }
            }
        }
        Outcome::Tagged {
            status,
            scanned: Box::new(scanned),
            quarantined,
            note,
        }
    }
}
