//! The starter's pages: props and views (both builds), loaders (server only: `#[page]` and
//! `#[paths]` functions exist only with the `ssr` feature).

// ANCHOR: imports
#[cfg(feature = "ssr")]
use crate::db::Db;
use isr::prelude::*;
use leptos::prelude::*;
use leptos_meta::Title;
// ANCHOR_END: imports

// ANCHOR: home
/// A link on the home page.
#[derive(Clone, Serialize, Deserialize)]
pub struct NoteLink {
    pub id: u32,
    pub title: String,
}

/// The props of `/`: what the loader read, what the view shows.
#[derive(Clone, Serialize, Deserialize)]
pub struct Home {
    pub notes: Vec<NoteLink>,
}

/// `/`: a static route, pre-rendered at the build and regenerated at most once a minute.
#[page(path = "/", revalidate = 60, view = home_page, tags = ["notes"])]
async fn home(State(db): State<Db>) -> isr::Result<Load<Home>> {
    let notes = db.titles().await?; // an error keeps the old page; the log names the path
    let notes = notes
        .into_iter()
        .map(|(id, title)| NoteLink { id, title })
        .collect();
    Ok(Load::props(Home { notes }))
}

/// The view: a function of the props, rendered on the server and hydrated in the browser.
pub fn home_page(home: Home) -> impl IntoView {
    view! {
        <Title text="Notes" />
        <h1>"Notes"</h1>
        <ul>
            {home
                .notes
                .into_iter()
                .map(|note| {
                    view! {
                        <li>
                            <a href=format!("/notes/{}", note.id)>{note.title}</a>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}
// ANCHOR_END: home

// ANCHOR: note
/// The props of `/notes/:id`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Note {
    pub title: String,
    pub body: String,
}

/// The route's parameter, typed: `/notes/7` is `NoteId { id: 7 }`, `/notes/x` a 404.
#[derive(Clone, Serialize, Deserialize)]
pub struct NoteId {
    pub id: u32,
}

/// `/notes/:id`: every note is pre-rendered (`paths`); a note added later is rendered on its
/// first request (`fallback = "blocking"`); a missing one is a 404.
#[page(
    path = "/notes/:id",
    revalidate = 60,
    view = note_page,
    paths = all_notes,
    fallback = "blocking",
    tags = ["notes"]
)]
async fn note(Path(NoteId { id }): Path<NoteId>, State(db): State<Db>) -> isr::Result<Load<Note>> {
    Ok(match db.note(id).await? {
        Some(row) => Load::props(Note {
            title: row.title,
            body: row.body,
        })
        .tag(format!("note-{}", row.id)),
        None => Load::NotFound,
    })
}

/// The paths `build` pre-renders.
#[paths]
async fn all_notes(State(db): State<Db>) -> isr::Result<Vec<NoteId>> {
    let notes = db.titles().await?;
    Ok(notes.into_iter().map(|(id, _)| NoteId { id }).collect())
}

pub fn note_page(note: Note) -> impl IntoView {
    view! {
        <Title text=note.title.clone() />
        <h1>{note.title}</h1>
        <p>{note.body}</p>
        <Likes />
        <p>
            <a href="/">"All notes"</a>
        </p>
    }
}
// ANCHOR_END: note

// ANCHOR: likes
/// A component with state: it counts clicks once the page has hydrated (before that, the
/// static HTML shows 0 and the button does nothing).
#[component]
fn Likes() -> impl IntoView {
    let (likes, set_likes) = signal(0);
    view! {
        <button on:click=move |_| set_likes.update(|n| *n += 1)>"Like (" {likes} ")"</button>
    }
}
// ANCHOR_END: likes
