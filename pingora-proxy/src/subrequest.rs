//! Subrequests: the proxy pipeline run again, with a fresh `CTX`, for a copy of a client's
//! request, without a client. The response goes to a [`SubrequestHandle`] instead of a
//! socket.
//!
//! The cache uses them to revalidate a stale response in the background
//! (`stale-while-revalidate`): the request that found it hands its cache write lock to a
//! subrequest and serves the stale response at once. A proxy may spawn its own through
//! `Session::subrequest_spawner`, once [`allow_spawning_subrequest`] allows it.
//!
//! [`allow_spawning_subrequest`]: crate::ProxyHttp::allow_spawning_subrequest

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_cache::lock::{CacheKeyLockImpl, LockStatus, WritePermit};
use pingora_cache::CacheKey;
use pingora_core::protocols::http::subrequest::server::{
    HttpSession as SubrequestSession, SubrequestHandle,
};
use pingora_core::protocols::http::ServerSession;

/// Data of the user's attached to a subrequest.
pub type UserCtx = Box<dyn Any + Send + Sync>;

/// Whether a subrequest has a request body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyMode {
    /// No body: the body headers of the copied request are removed.
    #[default]
    NoBody,
    /// The body comes through the [`SubrequestHandle`].
    ExpectBody,
}

/// A cache write lock handed to a subrequest.
struct HandedLock {
    permit: WritePermit,
    cache_lock: &'static CacheKeyLockImpl,
    key: CacheKey,
}

/// What a subrequest is given: a cache write lock, its body mode, the user's data.
pub struct Ctx {
    lock: Option<HandedLock>,
    body_mode: BodyMode,
    user_ctx: Option<UserCtx>,
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("holds_write_lock", &self.lock.is_some())
            .field("body_mode", &self.body_mode)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// A builder of a subrequest context.
    pub fn builder() -> CtxBuilder {
        CtxBuilder::default()
    }

    /// The user's data.
    pub fn user_ctx(&self) -> Option<&UserCtx> {
        self.user_ctx.as_ref()
    }

    /// The user's data, mutably.
    pub fn user_ctx_mut(&mut self) -> Option<&mut UserCtx> {
        self.user_ctx.as_mut()
    }

    /// Releases the handed write lock unused (its waiters compete again).
    pub fn release_write_lock(&mut self) {
        if let Some(lock) = self.lock.take() {
            lock.cache_lock
                .release(&lock.key, lock.permit, LockStatus::TransientError);
        }
    }

    /// Takes the handed write lock, to use it in the subrequest's cache.
    pub fn take_write_lock(&mut self) -> Option<WritePermit> {
        self.lock.take().map(|lock| lock.permit)
    }

    /// The body mode.
    pub fn body_mode(&self) -> BodyMode {
        self.body_mode
    }
}

/// Builds a [`Ctx`].
#[derive(Default)]
pub struct CtxBuilder {
    lock: Option<HandedLock>,
    body_mode: BodyMode,
    user_ctx: Option<UserCtx>,
}

impl fmt::Debug for CtxBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CtxBuilder")
            .field("body_mode", &self.body_mode)
            .finish_non_exhaustive()
    }
}

impl CtxBuilder {
    /// A builder with no lock, no body and no user data.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands the subrequest the write lock `write_permit` of `key` from `cache_lock`.
    pub fn cache_write_lock(
        mut self,
        cache_lock: &'static CacheKeyLockImpl,
        key: CacheKey,
        write_permit: WritePermit,
    ) -> Self {
        self.lock = Some(HandedLock {
            permit: write_permit,
            cache_lock,
            key,
        });
        self
    }

    /// Attaches the user's data.
    pub fn user_ctx(mut self, user_ctx: UserCtx) -> Self {
        self.user_ctx = Some(user_ctx);
        self
    }

    /// Sets the body mode.
    pub fn body_mode(mut self, body_mode: BodyMode) -> Self {
        self.body_mode = body_mode;
        self
    }

    /// The context.
    pub fn build(self) -> Ctx {
        Ctx {
            lock: self.lock,
            body_mode: self.body_mode,
            user_ctx: self.user_ctx,
        }
    }
}

/// Runs a subrequest through a proxy (implemented by the proxy application; a trait object
/// so that a request can spawn subrequests of its own proxy).
#[async_trait]
pub trait Subrequest {
    /// Runs the proxy pipeline for `session` with `ctx`.
    async fn process_subrequest(self: Arc<Self>, session: Box<ServerSession>, ctx: Box<Ctx>);
}

/// Starts subrequests of one proxy.
#[derive(Clone)]
pub struct SubrequestSpawner {
    app: Arc<dyn Subrequest + Send + Sync>,
}

impl fmt::Debug for SubrequestSpawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubrequestSpawner").finish_non_exhaustive()
    }
}

/// A subrequest ready to [`run`](PreparedSubrequest::run).
pub struct PreparedSubrequest {
    app: Arc<dyn Subrequest + Send + Sync>,
    session: Box<ServerSession>,
    ctx: Box<Ctx>,
}

impl fmt::Debug for PreparedSubrequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedSubrequest")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl PreparedSubrequest {
    /// Runs the subrequest to its end.
    pub async fn run(self) {
        self.app.process_subrequest(self.session, self.ctx).await
    }

    /// The subrequest's session.
    pub fn session(&self) -> &ServerSession {
        &self.session
    }

    /// The subrequest's session, to change its request before it runs.
    pub fn session_mut(&mut self) -> &mut ServerSession {
        &mut self.session
    }
}

impl SubrequestSpawner {
    /// A spawner running subrequests through `app`.
    pub fn new(app: Arc<dyn Subrequest + Send + Sync>) -> SubrequestSpawner {
        SubrequestSpawner { app }
    }

    /// Spawns a subrequest of `session`'s request whose response is discarded.
    pub fn spawn_background_subrequest(
        &self,
        session: &ServerSession,
        ctx: Ctx,
    ) -> tokio::task::JoinHandle<()> {
        let (prepared, handle) = self.create_subrequest(session, ctx);
        handle.drain_tasks();
        tokio::spawn(prepared.run())
    }

    /// A subrequest of `session`'s request, with the handle that feeds its body and
    /// receives its response.
    pub fn create_subrequest(
        &self,
        session: &ServerSession,
        ctx: Ctx,
    ) -> (PreparedSubrequest, SubrequestHandle) {
        let (mut sub, handle) = SubrequestSession::new_from_session(session);
        if ctx.body_mode() == BodyMode::NoBody {
            sub.clear_request_body_headers();
        }
        let prepared = PreparedSubrequest {
            app: self.app.clone(),
            session: Box::new(ServerSession::new_subrequest(sub)),
            ctx: Box::new(ctx),
        };
        (prepared, handle)
    }
}

/// Starts the background revalidation of the stale response the request of `session`
/// found, handing it the request's write lock. Returns whether it started; without a write
/// lock (no cache lock configured) it does not, and the request revalidates in the
/// foreground.
pub(crate) fn spawn_revalidation(
    spawner: &SubrequestSpawner,
    session: &mut crate::Session,
) -> bool {
    let Some((permit, cache_lock)) = session.cache.take_write_lock() else {
        return false;
    };
    let key = session.cache.cache_key().clone();
    let ctx = Ctx::builder()
        .cache_write_lock(cache_lock, key, permit)
        .build();
    spawner.spawn_background_subrequest(&session.downstream_session, ctx);
    true
}
