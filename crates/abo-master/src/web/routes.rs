//! The web pages' route table, as data: the router is built from it (`web::routes`), and
//! the anonymous-access test (`tests/web_pages.rs`, which includes this file) is generated
//! from it, so a route cannot be added without its access rule being tested.
//!
//! This file depends on nothing else in the crate on purpose.

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, always (the login form, style sheet and script).
    Public,
    /// A read: anyone when master.toml `[web] public = true` (the default), else only a
    /// logged-in user (others are sent to the login form).
    Private,
    /// A change: only a logged-in user, with the session's CSRF token in the form.
    Mutation,
}

/// The HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET (and HEAD).
    Get,
    /// POST, from a form.
    Post,
}

/// What a route serves; `web::routes` maps each to its handler with an exhaustive match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/`: buildouts × PostgreSQL versions.
    Matrix,
    /// One builder's history, chart and force form.
    Builder,
    /// Force a build of a builder.
    Force,
    /// One build: steps, logs, properties, changes.
    Build,
    /// Stop a running build.
    Stop,
    /// Run a build's request again.
    Rebuild,
    /// A log, a page of lines at a time.
    Log,
    /// A running log's new lines (server-sent events).
    LogLive,
    /// A test step's analysis: counts and failure lines linked to the log.
    Analysis,
    /// Workers: connection, version, capabilities, running builds.
    Workers,
    /// Pending requests with why each waits, running builds with where they are.
    Queue,
    /// Recent changes and the builds they caused.
    Changes,
    /// State changes for live pages (server-sent events).
    Events,
    /// SVG badge of a builder's latest result.
    BuilderBadge,
    /// SVG badge of a buildout's worst latest result over its builders.
    BuildoutBadge,
    /// The login form.
    LoginForm,
    /// Log in.
    Login,
    /// Log out.
    Logout,
    /// `/static/abo.css`.
    Css,
    /// `/static/abo.js`.
    Js,
    /// `/static/abo.svg`, the pages' icon.
    Icon,
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Its method.
    pub verb: Verb,
    /// Its path, in axum's syntax.
    pub path: &'static str,
    /// Who may use it.
    pub access: Access,
    /// What it serves.
    pub page: Page,
    /// A concrete path to call in tests (`tests/web_pages.rs`).
    #[allow(dead_code)]
    pub sample: &'static str,
}

const fn route(
    verb: Verb,
    path: &'static str,
    access: Access,
    page: Page,
    sample: &'static str,
) -> Route {
    Route {
        verb,
        path,
        access,
        page,
        sample,
    }
}

use Access::{Mutation, Private, Public};
use Verb::{Get, Post};

/// Every web route.
pub const ROUTES: &[Route] = &[
    route(Get, "/", Private, Page::Matrix, "/"),
    route(
        Get,
        "/builders/{name}",
        Private,
        Page::Builder,
        "/builders/x",
    ),
    route(
        Post,
        "/builders/{name}/force",
        Mutation,
        Page::Force,
        "/builders/x/force",
    ),
    route(Get, "/builds/{id}", Private, Page::Build, "/builds/1"),
    route(
        Post,
        "/builds/{id}/stop",
        Mutation,
        Page::Stop,
        "/builds/1/stop",
    ),
    route(
        Post,
        "/builds/{id}/rebuild",
        Mutation,
        Page::Rebuild,
        "/builds/1/rebuild",
    ),
    route(
        Get,
        "/builds/{id}/steps/{n}/logs/{name}",
        Private,
        Page::Log,
        "/builds/1/steps/0/logs/stdio",
    ),
    route(
        Get,
        "/builds/{id}/steps/{n}/logs/{name}/live",
        Private,
        Page::LogLive,
        "/builds/1/steps/0/logs/stdio/live",
    ),
    route(
        Get,
        "/builds/{id}/steps/{n}/analysis",
        Private,
        Page::Analysis,
        "/builds/1/steps/0/analysis",
    ),
    route(Get, "/workers", Private, Page::Workers, "/workers"),
    route(Get, "/queue", Private, Page::Queue, "/queue"),
    route(Get, "/changes", Private, Page::Changes, "/changes"),
    route(Get, "/events", Private, Page::Events, "/events"),
    route(
        Get,
        "/badges/builders/{name}",
        Private,
        Page::BuilderBadge,
        "/badges/builders/x.svg",
    ),
    route(
        Get,
        "/badges/buildouts/{name}",
        Private,
        Page::BuildoutBadge,
        "/badges/buildouts/x.svg",
    ),
    route(Get, "/login", Public, Page::LoginForm, "/login"),
    route(Post, "/login", Public, Page::Login, "/login"),
    route(Post, "/logout", Mutation, Page::Logout, "/logout"),
    route(Get, "/static/abo.css", Public, Page::Css, "/static/abo.css"),
    route(Get, "/static/abo.js", Public, Page::Js, "/static/abo.js"),
    route(
        Get,
        "/static/abo.svg",
        Public,
        Page::Icon,
        "/static/abo.svg",
    ),
];
