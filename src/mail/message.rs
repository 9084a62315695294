//! The invitation and reminder mails: multipart text and HTML, Vietnamese and English, from
//! templates compiled into the binary.

use askama::Template;

use crate::campaign::MailSettings;
use crate::survey::model::LocalizedText;

/// Everything a mail says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// What a mail is about.
#[derive(Debug, Clone)]
pub struct MailFacts<'a> {
    /// `vi` or `en`.
    pub language: &'a str,
    /// Campaign title in every language.
    pub campaign_title: &'a LocalizedText,
    /// The campaign's wording.
    pub settings: &'a MailSettings,
    /// The agency's name in the mail's language.
    pub agency: &'a str,
    /// Closing date, formatted for the language.
    pub closes_on: String,
    /// The personal link.
    pub link: String,
    /// The opt-out link.
    pub unsubscribe: String,
    /// A reminder rather than the first invitation.
    pub reminder: bool,
}

#[derive(Template)]
#[template(path = "mail/invitation.txt", escape = "none")]
struct TextMail<'a> {
    greeting: &'a str,
    intro: &'a str,
    call: &'a str,
    link: &'a str,
    deadline: &'a str,
    anonymous: &'a str,
    unsubscribe_text: &'a str,
    unsubscribe: &'a str,
}

#[derive(Template)]
#[template(path = "mail/invitation.html")]
struct HtmlMail<'a> {
    lang: &'a str,
    subject: &'a str,
    greeting: &'a str,
    intro: &'a str,
    button: &'a str,
    call: &'a str,
    link: &'a str,
    deadline: &'a str,
    anonymous: &'a str,
    unsubscribe_text: &'a str,
    unsubscribe_label: &'a str,
    unsubscribe: &'a str,
}

/// Renders a mail.
pub fn render(facts: &MailFacts) -> Result<Rendered, askama::Error> {
    let vi = facts.language != "en";
    let title = facts.campaign_title.get(facts.language);
    let custom = |text: &Option<LocalizedText>| text.as_ref().map(|t| t.get(facts.language).to_owned());
    let subject = custom(&facts.settings.subject).unwrap_or_else(|| title.to_owned());
    let subject = match (facts.reminder, vi) {
        (true, true) => format!("Nhắc lại: {subject}"),
        (true, false) => format!("Reminder: {subject}"),
        (false, _) => subject,
    };
    let greeting = custom(&facts.settings.greeting)
        .unwrap_or_else(|| if vi { "Kính gửi Ông/Bà," } else { "Dear Sir or Madam," }.to_owned());
    let intro = match (facts.reminder, vi) {
        (false, true) => format!(
            "Ông/Bà vừa giải quyết thủ tục hành chính tại {}. Xin mời Ông/Bà cho biết mức độ hài lòng của mình trong đợt khảo sát \"{title}\".",
            facts.agency
        ),
        (false, false) => format!(
            "You recently completed an administrative procedure with {}. Please tell us how satisfied you are in the survey \"{title}\".",
            facts.agency
        ),
        (true, true) => format!(
            "Chúng tôi chưa nhận được ý kiến của Ông/Bà về sự phục vụ của {} trong đợt khảo sát \"{title}\". Ý kiến của Ông/Bà rất quý.",
            facts.agency
        ),
        (true, false) => format!(
            "We have not yet received your opinion about the service of {} in the survey \"{title}\". Your opinion matters.",
            facts.agency
        ),
    };
    let (call, button, deadline, anonymous, unsubscribe_text, unsubscribe_label) = if vi {
        (
            "Đường dẫn dành riêng cho Ông/Bà, chỉ dùng được một lần:",
            "Trả lời phiếu khảo sát",
            format!("Phiếu nhận đến hết ngày {}.", facts.closes_on),
            "Phiếu không ghi tên: không ai biết câu trả lời nào là của Ông/Bà.",
            "Không muốn nhận thêm thư về đợt khảo sát này?",
            "Ngừng nhận thư",
        )
    } else {
        (
            "Your personal link, which works once:",
            "Answer the survey",
            format!("Responses are accepted until {}.", facts.closes_on),
            "The survey is anonymous: nobody can tell which answers are yours.",
            "Don't want more mail about this survey?",
            "Unsubscribe",
        )
    };
    let text = TextMail {
        greeting: &greeting,
        intro: &intro,
        call,
        link: &facts.link,
        deadline: &deadline,
        anonymous,
        unsubscribe_text,
        unsubscribe: &facts.unsubscribe,
    }
    .render()?;
    let html = HtmlMail {
        lang: if vi { "vi" } else { "en" },
        subject: &subject,
        greeting: &greeting,
        intro: &intro,
        button,
        call,
        link: &facts.link,
        deadline: &deadline,
        anonymous,
        unsubscribe_text,
        unsubscribe_label,
        unsubscribe: &facts.unsubscribe,
    }
    .render()?;
    Ok(Rendered { subject, text, html })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn title() -> LocalizedText {
        LocalizedText(
            [
                ("vi".to_owned(), "Khảo sát hài lòng 2026".to_owned()),
                ("en".to_owned(), "Satisfaction survey 2026".to_owned()),
            ]
            .into_iter()
            .collect(),
        )
    }

    fn facts<'a>(
        language: &'a str,
        title: &'a LocalizedText,
        settings: &'a MailSettings,
        reminder: bool,
    ) -> MailFacts<'a> {
        MailFacts {
            language,
            campaign_title: title,
            settings,
            agency: "Phường Hoàn Kiếm",
            closes_on: "31/12/2026".to_owned(),
            link: "https://khaosat.example.gov.vn/i/TOKEN".to_owned(),
            unsubscribe: "https://khaosat.example.gov.vn/u/TOKEN".to_owned(),
            reminder,
        }
    }

    #[test]
    fn the_mails_render_in_both_languages() {
        let title = title();
        let settings = MailSettings::default();
        let vi = render(&facts("vi", &title, &settings, false)).unwrap();
        let en = render(&facts("en", &title, &settings, true)).unwrap();
        insta::assert_snapshot!("invitation_vi_text", vi.text);
        insta::assert_snapshot!("invitation_vi_html", vi.html);
        insta::assert_snapshot!("reminder_en_text", en.text);
        assert_eq!(vi.subject, "Khảo sát hài lòng 2026");
        assert_eq!(en.subject, "Reminder: Satisfaction survey 2026");
    }

    #[test]
    fn campaign_wording_replaces_the_defaults_and_is_escaped_in_html() {
        let title = title();
        let settings = MailSettings {
            reminders: vec![3],
            subject: Some(LocalizedText([("vi".to_owned(), "Mời <đánh giá>".to_owned())].into_iter().collect())),
            greeting: Some(LocalizedText([("vi".to_owned(), "Chào bạn & gia đình,".to_owned())].into_iter().collect())),
        };
        let mail = render(&facts("vi", &title, &settings, false)).unwrap();
        assert_eq!(mail.subject, "Mời <đánh giá>");
        assert!(mail.text.starts_with("Chào bạn & gia đình,"));
        assert!(mail.html.contains("Chào bạn &#38; gia đình,") || mail.html.contains("Chào bạn &amp; gia đình,"));
    }
}
