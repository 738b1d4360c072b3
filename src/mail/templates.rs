//! The texts of the mails, in English and Spanish.

use crate::domain::Locale;

pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn invitation(locale: Locale, name: &str, link: &str, valid_hours: i64) -> RenderedMail {
    let (subject, greeting, body, action, expiry) = match locale {
        Locale::En => (
            "Your invitation to the D&C Ports Network portal",
            format!("Hello {name},"),
            "SELA's secretariat has invited you to the workspace of the Latin American and Caribbean Network of Digital and Collaborative Ports.",
            "Choose your password and activate your account",
            format!("This link can be used once and expires in {valid_hours} hours."),
        ),
        Locale::Es => (
            "Su invitación al portal de la Red de Puertos Digitales y Colaborativos",
            format!("Hola {name}:"),
            "La secretaría del SELA le ha invitado al espacio de trabajo de la Red de Puertos Digitales y Colaborativos de América Latina y el Caribe.",
            "Elija su contraseña y active su cuenta",
            format!("Este enlace puede usarse una sola vez y vence en {valid_hours} horas."),
        ),
    };
    compose(subject, &greeting, body, action, link, &expiry)
}

pub fn password_reset(locale: Locale, name: &str, link: &str, valid_hours: i64) -> RenderedMail {
    let (subject, greeting, body, action, expiry) = match locale {
        Locale::En => (
            "Reset your D&C Ports Network password",
            format!("Hello {name},"),
            "Someone asked to reset the password of your account. If it was not you, ignore this message: your password stays as it is.",
            "Choose a new password",
            format!("This link can be used once and expires in {valid_hours} hours."),
        ),
        Locale::Es => (
            "Restablezca su contraseña de la Red de Puertos D&C",
            format!("Hola {name}:"),
            "Alguien pidió restablecer la contraseña de su cuenta. Si no fue usted, ignore este mensaje: su contraseña no cambia.",
            "Elija una nueva contraseña",
            format!("Este enlace puede usarse una sola vez y vence en {valid_hours} horas."),
        ),
    };
    compose(subject, &greeting, body, action, link, &expiry)
}

pub fn task_assigned(locale: Locale, name: &str, task_title: &str, link: &str) -> RenderedMail {
    let (subject, greeting, body, action) = match locale {
        Locale::En => (
            format!("New task for you: {task_title}"),
            format!("Hello {name},"),
            format!("You have been assigned the task “{task_title}”."),
            "Open the task",
        ),
        Locale::Es => (
            format!("Nueva tarea asignada: {task_title}"),
            format!("Hola {name}:"),
            format!("Se le ha asignado la tarea «{task_title}»."),
            "Abrir la tarea",
        ),
    };
    compose(&subject, &greeting, &body, action, link, "")
}

/// A message about a meeting: its agenda, a reminder, or its cancellation.
pub fn meeting_notice(
    locale: Locale,
    kind: MeetingNotice,
    title: &str,
    when: &str,
    agenda: &str,
    link: &str,
) -> RenderedMail {
    let (subject, intro, action) = match (locale, kind) {
        (Locale::En, MeetingNotice::Agenda) => (
            format!("Agenda: {title}"),
            format!("The agenda of “{title}” ({when}) is ready."),
            "Open the meeting",
        ),
        (Locale::Es, MeetingNotice::Agenda) => (
            format!("Orden del día: {title}"),
            format!("El orden del día de «{title}» ({when}) está listo."),
            "Abrir la reunión",
        ),
        (Locale::En, MeetingNotice::Reminder) => (
            format!("Reminder: {title}"),
            format!("“{title}” starts {when}."),
            "Open the meeting",
        ),
        (Locale::Es, MeetingNotice::Reminder) => (
            format!("Recordatorio: {title}"),
            format!("«{title}» comienza el {when}."),
            "Abrir la reunión",
        ),
        (Locale::En, MeetingNotice::Cancelled) => (
            format!("Cancelled: {title}"),
            format!("“{title}” ({when}) has been cancelled."),
            "Open the meeting",
        ),
        (Locale::Es, MeetingNotice::Cancelled) => (
            format!("Cancelada: {title}"),
            format!("«{title}» ({when}) ha sido cancelada."),
            "Abrir la reunión",
        ),
    };
    let greeting = match locale {
        Locale::En => "Hello,",
        Locale::Es => "Hola:",
    };
    compose(&subject, greeting, &format!("{intro}\n\n{agenda}"), action, link, "")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeetingNotice {
    Agenda,
    Reminder,
    Cancelled,
}

fn compose(subject: &str, greeting: &str, body: &str, action: &str, link: &str, expiry: &str) -> RenderedMail {
    let text = format!("{greeting}\n\n{body}\n\n{action}:\n{link}\n\n{expiry}\n\n-- \nSELA · D&C Ports Network\n");
    let html = format!(
        "<!doctype html><html><body><p>{}</p>{}<p><a href=\"{}\">{}</a></p><p>{}</p><p>SELA · D&amp;C Ports Network</p></body></html>",
        escape(greeting),
        html_paragraphs(body),
        escape(link),
        escape(action),
        escape(expiry)
    );
    RenderedMail {
        subject: subject.to_owned(),
        text,
        html,
    }
}

/// Plain text as HTML: a paragraph for each run of lines between blank lines, its lines kept
/// apart and their indentation kept (an agenda's sub-items), which HTML would otherwise run
/// together into one line.
fn html_paragraphs(text: &str) -> String {
    text.split("\n\n")
        .filter(|paragraph| !paragraph.trim().is_empty())
        .map(|paragraph| {
            let lines: Vec<String> = paragraph
                .lines()
                .map(|line| {
                    let text = line.trim_start();
                    let indent = line.len() - text.len();
                    format!("{}{}", "&nbsp;".repeat(indent), escape(text))
                })
                .collect();
            format!("<p>{}</p>", lines.join("<br>"))
        })
        .collect()
}

/// Escapes text for HTML: member names are user input.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_the_html_part_and_kept_in_the_text_part() {
        let mail = invitation(Locale::En, "<b>Ana</b>", "https://x.test/i?token=a&b", 24);
        assert!(mail.html.contains("&lt;b&gt;Ana&lt;/b&gt;"));
        assert!(mail.html.contains("token=a&amp;b"));
        assert!(mail.text.contains("Hello <b>Ana</b>,"));
    }

    #[test]
    fn an_agenda_keeps_its_lines_and_indentation_in_the_html_part() {
        let agenda = "09:00  Opening (10 min)\n    09:00  Welcome <all> (5 min)\n09:10  MOU (20 min)";
        let mail = meeting_notice(
            Locale::En,
            MeetingNotice::Agenda,
            "Plenary",
            "1 Dec",
            agenda,
            "https://x.test",
        );
        assert!(
            mail.html.contains(
                "<p>09:00  Opening (10 min)<br>&nbsp;&nbsp;&nbsp;&nbsp;09:00  Welcome &lt;all&gt; (5 min)<br>09:10  MOU (20 min)</p>"
            ),
            "{}",
            mail.html
        );
        assert!(
            mail.html.contains("<p>The agenda of “Plenary” (1 Dec) is ready.</p>"),
            "{}",
            mail.html
        );
        assert!(mail.text.contains(agenda));
    }

    #[test]
    fn spanish_mails_are_in_spanish() {
        let mail = password_reset(Locale::Es, "Ana", "https://x.test", 2);
        assert!(mail.subject.starts_with("Restablezca"));
        assert!(mail.text.contains("vence en 2 horas"));
    }
}
