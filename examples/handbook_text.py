"""The text of the made-up Orbitask handbook: chapters, their facts and procedures (written by make_handbook.py)."""

from __future__ import annotations

# chapter -> (opening paragraphs, facts). A fact: (statement in the chapter, statement in the quick reference,
# [questions], answer, key fact). The first question of a held-out fact is the held-out row.
CHAPTERS: dict[str, tuple[list[str], list[tuple[str, str, list[str], str, str | list[str]]]]] = {
    "Plans and billing": (
        ["Orbitask is sold by Fernhill Software in four plans: Starter, Crew, Studio and Enterprise. Every plan "
         "includes unlimited tasks; the plans differ in how many people can work together, how much can be stored, "
         "and which administration and automation features are available.",
         "Prices are set in US dollars and billed monthly or yearly. Invoices are issued on the day a billing "
         "period starts and are sent to the billing contact of the workspace, who can be someone other than the "
         "owner."],
        [("The Starter plan is free and allows up to 4 members in a workspace.",
          "Starter: free, at most 4 members.",
          ["How many people can use the free Starter plan?", "Is there a member limit on Starter?"],
          "The Starter plan is free for up to 4 members.", "4 members"),
         ("The Crew plan costs $9 per member per month when billed monthly.",
          "Crew: $9 per member per month (monthly billing).",
          ["What does the Crew plan cost?", "How much is Crew per person?"],
          "Crew costs $9 per member per month on monthly billing.", "$9"),
         ("The Studio plan costs $17 per member per month when billed monthly.",
          "Studio: $17 per member per month (monthly billing).",
          ["What is the monthly price of a Studio seat?", "How much does the Studio plan cost?"],
          "Studio costs $17 per member per month on monthly billing.", "$17"),
         ("Paying yearly instead of monthly takes 18 percent off the price of Crew and Studio.",
          "Yearly billing: 18% off Crew and Studio.",
          ["Is there a discount for annual billing?", "How much do I save by paying for a year at once?"],
          "Yearly billing takes 18% off the Crew and Studio prices.", ["18%", "18 percent"]),
         ("A new workspace can try Studio for 21 days without entering a card.",
          "Studio trial: 21 days, no card needed.",
          ["How long is the free trial of Studio?", "Can I test Studio before paying, and for how long?"],
          "You can try Studio free for 21 days, with no card required.", "21 days"),
         ("Refunds are given for payments made in the last 14 days; after that, a downgrade takes effect at the end "
          "of the billing period.",
          "Refund window: 14 days after a payment.",
          ["Until when can I ask for my money back after paying?", "What is your refund policy?"],
          "Payments can be refunded within 14 days; after that a downgrade applies at the end of the period.",
          "14 days"),
         ("Orbitask accepts cards, and on yearly Enterprise contracts it also accepts bank transfer; it does not "
          "accept PayPal.",
          "Payment: cards; bank transfer for yearly Enterprise; no PayPal.",
          ["Can I pay for Orbitask with PayPal?", "Which payment methods do you take?"],
          "No, Orbitask does not accept PayPal; it takes cards, and bank transfer on yearly Enterprise contracts.",
          ["not accept paypal", "doesn't accept paypal", "no paypal", "cannot pay with paypal"]),
         ("Nonprofits and schools get 40 percent off any paid plan after sending proof of status "
          "through the grants form in the Help Center.",
          "Nonprofit and education discount: 40%.",
          ["Do charities get a discount on Orbitask?", "Is there an education discount?"],
          "Nonprofits and schools get 40% off any paid plan once they send proof of status.",
          ["40%", "40 percent"]),
         ]),
    "Accounts and security": (
        ["Every person signs in with their own Orbitask account. An account can belong to several workspaces, "
         "and switching between them does not require signing in again.",
         "Security settings live under Settings → Security. Workspace owners on Studio and Enterprise can make "
         "some of them mandatory for every member."],
        [("A password must be at least 12 characters long.",
          "Passwords: 12 characters minimum.",
          ["What is the minimum password length?", "How long does my password have to be?"],
          "Passwords need at least 12 characters.", "12 characters"),
         ("After 6 failed sign-in attempts in a row, the account is locked for 30 minutes.",
          "Lockout: 6 failed attempts lock the account for 30 minutes.",
          ["How many wrong passwords before I get locked out?", "Why can't I sign in after typing my password "
                                                                 "wrong several times?"],
          "Six failed sign-in attempts in a row lock the account for 30 minutes.", ["6", "six"]),
         ("A password-reset link is valid for 45 minutes after it is sent.",
          "Reset links expire after 45 minutes.",
          ["For how long does the reset email link work?", "My password reset link stopped working, how long "
                                                            "is it valid?"],
          "A password-reset link works for 45 minutes after it is sent.", "45 minutes"),
         ("Two-factor authentication comes with 8 single-use backup codes, shown once when it is turned on.",
          "2FA backup codes: 8, single use.",
          ["How many backup codes do I get with two-factor authentication?", "What are 2FA backup codes and "
                                                                              "how many are there?"],
          "Turning on two-factor authentication gives you 8 single-use backup codes.", ["8", "eight"]),
         ("Single sign-on through SAML is available on the Studio and Enterprise plans.",
          "SAML single sign-on: Studio and Enterprise.",
          ["Which plan do I need to log in with our company's SAML provider?", "Is SSO part of the Crew plan?"],
          "SAML single sign-on comes with the Studio and Enterprise plans, not with Crew.", "studio"),
         ("Idle sessions in the web app sign out after 14 hours on Enterprise, where owners can shorten it; on "
          "other plans a session lasts 30 days.",
          "Session length: 30 days (Enterprise default 14 hours, adjustable).",
          ["How long do I stay signed in on the website?", "When does the web app log me out?"],
          "On most plans you stay signed in for 30 days; Enterprise signs idle sessions out after 14 hours by "
          "default.", "30 days"),
         ]),
    "Projects and tasks": (
        ["Work in Orbitask is organised in projects, and each project holds tasks. A task has a title, an owner, "
         "a due date, a status and any number of comments, checklists and attachments.",
         "Projects can be viewed as a list, a board or a timeline; all three views show the same tasks, so "
         "nothing has to be entered twice."],
        [("A single task can hold at most 50 subtasks.",
          "Subtasks: up to 50 per task.",
          ["How many subtasks can one task have?", "Is there a limit on subtasks?"],
          "A task can have at most 50 subtasks.", "50"),
         ("Deleted tasks and projects stay in the Bin for 60 days and can be restored from there.",
          "Bin: deleted items kept 60 days.",
          ["I deleted a project by mistake, how long can I still get it back?", "How long is the Bin kept?"],
          "Deleted tasks and projects stay in the Bin for 60 days and can be restored until then.", "60 days"),
         ("The timeline view is part of Crew, Studio and Enterprise; Starter has list and board views only.",
          "Timeline view: Crew and above.",
          ["Why don't I see the timeline view on the free plan?", "Which plans include the timeline?"],
          "The timeline view comes with Crew, Studio and Enterprise; Starter has only list and board views.", "crew"),
         ("A project can have up to 12 custom fields, such as budget, client or priority.",
          "Custom fields: 12 per project.",
          ["How many custom fields can I add to a project?", "Is there a cap on custom fields?"],
          "Each project can have up to 12 custom fields.", "12"),
         ("Recurring tasks can repeat daily, weekly, monthly or yearly; the next copy appears at 6:00 on the day it "
          "starts, in the owner's time zone.",
          "Recurring tasks: next copy appears at 6:00 on its start day.",
          ["At what time does the next copy of a recurring task show up?", "How do recurring tasks work?"],
          "The next copy of a recurring task appears at 6:00 on the day it starts, in the owner's time zone.",
          "6:00"),
         ("Task titles are limited to 200 characters; longer text belongs in the description.",
          "Task titles: 200 characters at most.",
          ["Is there a character limit for task names?", "How long can a task title be?"],
          "Task titles can be up to 200 characters long.", "200"),
         ("Archived projects are read-only and do not count towards the project limit of the Starter plan, "
          "which is 10 active projects.",
          "Starter: 10 active projects (archived ones do not count).",
          ["How many projects can I have on Starter?", "Do archived projects count against my limit?"],
          "Starter allows 10 active projects, and archived projects don't count towards that.",
          ["10 active projects", "10 projects"]),
         ]),
    "Files and storage": (
        ["Files can be attached to tasks and comments, or dropped into a project's Files tab. Previews are "
         "generated for images, PDFs and common office documents.",
         "Storage is shared by the whole workspace and grows with the number of paid members."],
        [("A single attachment can be up to 250 MB.",
          "Attachment size limit: 250 MB per file.",
          ["What's the largest file I can upload?", "Why does my upload fail for a big video?"],
          "Each attachment can be up to 250 MB.", "250 MB"),
         ("The Starter plan includes 2 GB of storage for the whole workspace.",
          "Starter storage: 2 GB per workspace.",
          ["How much storage comes with the free plan?", "What is the storage quota on Starter?"],
          "Starter includes 2 GB of storage for the whole workspace.", "2 GB"),
         ("Crew adds 25 GB of storage for every paid member.",
          "Crew storage: 25 GB per member.",
          ["How much space do I get per person on Crew?", "What is Crew's storage allowance?"],
          "Crew gives 25 GB of storage per paid member.", "25 GB"),
         ("When a file is replaced, Orbitask keeps its previous 20 versions.",
          "File versions: last 20 kept.",
          ["How many older versions of a file are kept?", "Can I go back to an earlier version of an "
                                                          "attachment?"],
          "Orbitask keeps the previous 20 versions of a replaced file.", "20"),
         ("Executable files (.exe, .bat, .msi) cannot be uploaded, for the safety of everyone in the workspace.",
          "Blocked uploads: .exe, .bat, .msi.",
          ["Which kinds of files can't be uploaded?", "Why can't I attach an .exe file?"],
          "Executable files such as .exe, .bat and .msi are blocked for safety.", ["msi", "bat"]),
         ]),
    "Offline use and sync": (
        ["The desktop and mobile apps work without a connection. Changes made offline are kept on the device and "
         "sent when the connection returns.",
         "When two people change the same field while one of them is offline, the change saved last wins and "
         "the other is kept in the task's history."],
        [("The apps keep the last 90 days of tasks available offline.",
          "Offline window: last 90 days of tasks.",
          ["How far back can I see tasks without internet?", "How many days of tasks are stored for offline use?"],
          "The apps keep the last 90 days of tasks available offline.", "90 days"),
         ("Attachments are not downloaded for offline use unless a file is starred.",
          "Offline files: only starred attachments.",
          ["Can I open attachments when I'm offline?", "Why are my files missing offline?"],
          "Only starred attachments are downloaded for offline use.", "starred"),
         ("Offline changes are synced within 10 seconds of the connection returning.",
          "Sync after reconnecting: within 10 seconds.",
          ["How quickly do my offline edits upload once I'm back online?", "When do offline changes sync?"],
          "Offline changes sync within 10 seconds of reconnecting.", "10 seconds"),
         ("If a device stays offline for more than 30 days, it must sign in again before it can sync.",
          "Offline over 30 days: sign in again.",
          ["My laptop was offline for a long time and now asks me to log in, why?", "Is there a limit to how long "
                                                                                    "a device can stay offline?"],
          "A device offline for more than 30 days has to sign in again before syncing.", "30 days"),
         ]),
    "Integrations": (
        ["Integrations are turned on per workspace under Settings → Integrations by an owner or admin. Each one "
         "asks for the smallest access it needs and lists it before you connect.",
         "Orbitask also has a public API and webhooks for teams that build their own connections."],
        [("The calendar integration syncs due dates to Google Calendar and Outlook every 15 minutes.",
          "Calendar sync: every 15 minutes (Google, Outlook).",
          ["How often do due dates update in my Google Calendar?", "Does Orbitask sync with Outlook, and how "
                                                                   "often?"],
          "Due dates sync to Google Calendar and Outlook every 15 minutes.", "15 minutes"),
         ("The API allows 300 requests per minute per workspace.",
          "API rate limit: 300 requests per minute.",
          ["What is the API rate limit?", "How many API calls can we make per minute?"],
          "The API allows 300 requests per minute per workspace.", "300"),
         ("API tokens expire after 180 days and can be renewed from the developer settings.",
          "API tokens: valid 180 days.",
          ["Do API tokens expire?", "How long is a personal API token valid?"],
          "API tokens expire after 180 days; you can renew them in the developer settings.", "180 days"),
         ("A webhook that fails is retried 5 times over one hour before it is paused.",
          "Webhook retries: 5 within an hour, then paused.",
          ["What happens when our webhook endpoint is down?", "How many times is a failed webhook retried?"],
          "A failed webhook is retried 5 times over an hour, then paused.", ["5 times", "five times"]),
         ("The Slack integration posts task updates to one channel per project.",
          "Slack: one channel per project.",
          ["Can I send project updates to Slack?", "How many Slack channels can a project post to?"],
          "Yes, the Slack integration posts each project's task updates to one channel.", "one channel"),
         ]),
    "Notifications": (
        ["Notifications tell you when something needs your attention: a task assigned to you, a comment that "
         "mentions you, or a due date coming up.",
         "Each person chooses how to be told, by email, push or in the app, under Settings → Notifications."],
        [("Due-date reminders are sent 24 hours before a task is due, unless the owner picks another time.",
          "Default due reminder: 24 hours before.",
          ["When will Orbitask remind me about a deadline?", "How early is the due-date reminder?"],
          "By default the reminder comes 24 hours before the task is due.", "24 hours"),
         ("The daily digest email is sent at 7:30 in the morning, in each member's own time zone.",
          "Daily digest: 7:30 a.m. local time.",
          ["What time does the daily summary email arrive?", "When is the digest sent?"],
          "The daily digest is sent at 7:30 in the morning, your time.", "7:30"),
         ("Quiet hours pause push notifications; by default they run from 21:00 to 7:00.",
          "Quiet hours: 21:00–7:00 by default.",
          ["Can I stop notifications at night?", "What are the default quiet hours?"],
          "Quiet hours pause push notifications, from 21:00 to 7:00 by default.", "21:00"),
         ]),
    "Teams and administration": (
        ["Each workspace has one owner, any number of admins, members and guests. Owners and admins manage "
         "billing, members and security settings; only the owner can delete the workspace.",
         "Guests are people outside the company, such as clients, who see only the projects shared with them."],
        [("Guests are free, and a workspace can invite up to 3 guests per paid member.",
          "Guests: free, 3 per paid member.",
          ["Do I pay for clients I invite as guests?", "How many guests can we add?"],
          "Guests are free; you can invite 3 guests for each paid member.", ["3 guests", "three guests"]),
         ("Ownership of a workspace can be transferred only to a member who has been an admin for at least 7 days.",
          "Ownership transfer: to someone who has been an admin for 7 days or more.",
          ["I'm leaving the company; who can I hand the workspace over to?", "Can ownership be transferred to "
                                                                             "any member?"],
          "Ownership can only go to a member who has been an admin for at least 7 days.", "7 days"),
         ("The audit log keeps a record of admin actions for 400 days on Enterprise.",
          "Audit log retention: 400 days (Enterprise).",
          ["How long is the audit log kept?", "Where can I see what admins changed, and for how far back?"],
          "On Enterprise the audit log keeps admin actions for 400 days.", "400 days"),
         ("A removed member's open tasks move to a project named Handover, where an admin can reassign them.",
          "Removed members: open tasks move to the Handover project.",
          ["What happens to someone's tasks when they are removed from the workspace?", "Where do the tasks of a "
                                                                                        "person who left end up?"],
          "Their open tasks move to a project called Handover, where an admin can reassign them.", "handover"),
         ]),
    "Data and privacy": (
        ["Fernhill Software stores customer data in the region chosen when the workspace is created. Data is "
         "encrypted in transit and at rest.",
         "Customers own their data. Fernhill staff access it only when a customer asks for help and grants "
         "access for that request."],
        [("Workspaces can be hosted in the EU region, in Tampere, or in the US region, in Columbus.",
          "Data regions: EU (Tampere) and US (Columbus).",
          ["Where are your EU servers located?", "Can our data stay in Europe?"],
          "Yes; the EU region is hosted in Tampere, and the US region in Columbus.", "tampere"),
         ("A full export of a workspace, as JSON and attachments, can be requested once every 6 hours.",
          "Full export: once every 6 hours.",
          ["How often can I export all our data?", "Is there a limit on workspace exports?"],
          "A full workspace export can be requested once every 6 hours.", "6 hours"),
         ("After a workspace is deleted, its data is erased from backups within 35 days.",
          "Backups of deleted workspaces: erased within 35 days.",
          ["When is our data really gone after we delete the workspace?", "How long do backups keep deleted data?"],
          "Deleted workspace data is erased from backups within 35 days.", "35 days"),
         ("Fernhill Software is certified to ISO 27001; the certificate is available in the Trust Center.",
          "Certification: ISO 27001.",
          ["Which security certification does Orbitask have?", "Are you ISO certified?"],
          "Fernhill Software is ISO 27001 certified; see the Trust Center for the certificate.", "27001"),
         ]),
    "Mobile apps": (
        ["The Orbitask mobile apps have the same projects and tasks as the web app, with a home screen that "
         "shows what is due today.",
         "Photos taken in the app can be attached to a task directly from the camera."],
        [("The iPhone app needs iOS 16.4 or later.",
          "iOS requirement: 16.4 or later.",
          ["Which iOS version do I need for the app?", "Will Orbitask run on an old iPhone?"],
          "The iPhone app needs iOS 16.4 or later.", "16.4"),
         ("The Android app needs Android 11 or later.",
          "Android requirement: 11 or later.",
          ["What Android version is required?", "Does the app support older Android phones?"],
          "The Android app needs Android 11 or later.", "android 11"),
         ("Voice notes recorded in the mobile apps can be up to 5 minutes long.",
          "Voice notes: 5 minutes at most.",
          ["How long can a voice note be?", "Is there a limit when recording audio in the app?"],
          "Voice notes can be up to 5 minutes long.", "5 minutes"),
         ("Widgets for the home screen show up to 6 tasks due today.",
          "Home-screen widget: 6 tasks due today.",
          ["How many tasks does the phone widget show?", "What does the home screen widget display?"],
          "The home-screen widget shows up to 6 tasks that are due today.", ["6", "six"]),
         ]),
    "Getting help": (
        ["Help articles are in the Help Center, and the in-app assistant can answer most questions straight "
         "away. Problems that need a person go to the support team.",
         "Support is given in English, German and Spanish."],
        [("The support team answers Monday to Friday, 8:00 to 18:00 Central European Time.",
          "Support hours: Mon–Fri, 8:00–18:00 CET.",
          ["When is your support team available?", "Can I reach support on weekends?"],
          "Support answers Monday to Friday, 8:00 to 18:00 Central European Time.", "18:00"),
         ("Studio customers get a first reply within 4 business hours; Starter and Crew within 2 business days.",
          "First reply: Studio 4 business hours; Starter and Crew 2 business days.",
          ["How quickly will support reply to a Studio customer?", "What is the response time on Studio?"],
          "Studio customers get a first reply within 4 business hours.", "4 business hours"),
         ("Enterprise customers have a named success manager and a phone line open from 6:00 to 22:00 CET.",
          "Enterprise: named success manager, phone line 6:00–22:00 CET.",
          ["Until what time can Enterprise customers phone support?", "Do Enterprise customers get a dedicated "
                                                                      "contact?"],
          "Enterprise customers can phone support from 6:00 to 22:00 CET and have a named success manager.",
          "22:00"),
         ("The status page at status.orbitask.example shows outages and planned maintenance, which happens on "
          "Sundays between 02:00 and 04:00 UTC.",
          "Maintenance window: Sundays 02:00–04:00 UTC.",
          ["When does planned maintenance happen?", "Why was Orbitask down early on Sunday morning?"],
          "Planned maintenance happens on Sundays between 02:00 and 04:00 UTC.", ["02:00", "2:00", "2 am"]),
         ]),
    "Automations and shortcuts": (
        ["Automations are rules of the form 'when this happens, do that', such as moving a task to Done when "
         "all its subtasks are checked.",
         "Keyboard shortcuts work everywhere in the web and desktop apps; press ? to see them all."],
        [("Crew workspaces can run 250 automation actions per month; Studio has no monthly cap.",
          "Automation actions: 250 per month on Crew, unlimited on Studio.",
          ["How many automation runs are included in Crew?", "Is there a monthly automation limit?"],
          "Crew includes 250 automation actions a month; Studio has no cap.",
          ["250 automation", "250 actions"]),  # "250" alone is also the attachment limit in MB
         ("Each project can have at most 25 active automation rules.",
          "Automation rules: 25 per project.",
          ["How many automation rules can a project have?", "Is there a limit on rules per project?"],
          "A project can have up to 25 active automation rules.", "25"),
         ("Pressing Shift+N anywhere opens quick add, which creates a task in the current project.",
          "Shortcut Shift+N: quick add.",
          ["What is the keyboard shortcut to add a task quickly?", "Which keys open quick add?"],
          "Press Shift+N to open quick add and create a task in the current project.", "shift n"),
         ("Pressing G then T jumps to the Today view.",
          "Shortcut G then T: Today view.",
          ["Is there a shortcut to go to today's tasks?", "How do I jump to the Today view from the keyboard?"],
          "Press G then T to jump to the Today view.", ["g then t", "g t"]),
         ]),
}

PROCEDURES: dict[str, list[tuple[str, list[str]]]] = {
    "Plans and billing": [
        ("Change your plan", ["Open Settings → Billing as the workspace owner or an admin.",
                              "Choose Change plan and pick the plan you want.",
                              "Review the new price for the number of members you have, then confirm.",
                              "An upgrade starts at once and the difference is charged for the rest of the period; "
                              "a downgrade starts at the end of the current period."]),
        ("Update the billing contact", ["Open Settings → Billing → Billing contact.",
                                        "Enter the name and email address that should receive invoices.",
                                        "Save. Future invoices go to the new contact; past invoices stay "
                                        "available to download in Settings → Billing → Invoices."]),
        ("Add a tax number to invoices", ["Open Settings → Billing → Company details.",
                                          "Enter the company's legal name, address and tax number.",
                                          "Save. The details appear on the next invoice; ask support if an "
                                          "earlier invoice needs to be reissued."]),
    ],
    "Accounts and security": [
        ("Turn on two-factor authentication", ["Open Settings → Security → Two-factor authentication.",
                                               "Scan the code with an authenticator app and enter the six-digit "
                                               "code it shows.",
                                               "Write down the backup codes and keep them somewhere safe, away from "
                                               "your phone."]),
        ("Sign out of every device", ["Open Settings → Security → Sessions.",
                                      "Review the list of devices and browsers that are signed in.",
                                      "Choose Sign out everywhere. You stay signed in only on the device you used."]),
        ("Change the email address of your account", ["Open Settings → Profile → Email.",
                                                      "Enter the new address and your password.",
                                                      "Open the confirmation link sent to the new address. Until "
                                                      "then, the old address keeps working."]),
    ],
    "Projects and tasks": [
        ("Create a project from a template", ["Choose New project in the sidebar.",
                                              "Pick a template, such as Product launch or Client onboarding, or "
                                              "start from a blank project.",
                                              "Name the project, choose who can see it and invite the people who "
                                              "will work on it."]),
        ("Move tasks between projects", ["Select one or more tasks in the list view.",
                                         "Choose Move and pick the destination project.",
                                         "Comments, attachments and history move with the tasks; custom fields "
                                         "that the destination does not have are kept in the task's history."]),
        ("Restore something you deleted", ["Open the Bin from the bottom of the sidebar.",
                                           "Find the task or project, using the search box if the list is long.",
                                           "Choose Restore. It returns to where it was, with its comments and "
                                           "attachments."]),
    ],
    "Files and storage": [
        ("See what uses your storage", ["Open Settings → Storage.",
                                        "The largest files are listed first, with the project they belong to.",
                                        "Delete files you no longer need, or move old projects to the archive."]),
        ("Replace an attachment with a new version", ["Open the task and find the attachment.",
                                                      "Choose Upload new version and select the file.",
                                                      "Earlier versions stay available under Version history."]),
    ],
    "Offline use and sync": [
        ("Make a file available offline", ["Open the attachment in the desktop or mobile app.",
                                           "Choose the star icon.",
                                           "The file downloads the next time the app is online and stays on the "
                                           "device until you remove the star."]),
        ("Resolve a sync conflict", ["Open the task that shows the yellow conflict marker.",
                                     "Open History to see both versions of the field.",
                                     "Choose the version to keep. The other remains in the history."]),
    ],
    "Integrations": [
        ("Connect a calendar", ["Open Settings → Integrations → Calendar.",
                                "Choose Google Calendar or Outlook and sign in to that account.",
                                "Pick which projects' due dates should appear. Changing a date in Orbitask "
                                "updates the calendar; changes made in the calendar are not sent back."]),
        ("Create an API token", ["Open Settings → Developer → API tokens.",
                                 "Choose New token, give it a name and choose its scopes.",
                                 "Copy the token at once: it is shown only one time."]),
        ("Set up a webhook", ["Open Settings → Developer → Webhooks.",
                              "Enter the URL that should receive events and choose the events to send.",
                              "Orbitask sends a test event; the webhook is active once your endpoint answers "
                              "with a success status."]),
    ],
    "Notifications": [
        ("Choose how you are notified", ["Open Settings → Notifications.",
                                         "For each kind of event, choose email, push, in-app, or none.",
                                         "Changes apply at once to every device you use."]),
        ("Mute a project", ["Open the project and choose the bell icon.",
                            "Choose Mute. You still hear about tasks assigned to you and mentions of your name."]),
    ],
    "Teams and administration": [
        ("Invite members", ["Open Settings → Members and choose Invite.",
                            "Enter one or more email addresses and pick a role: admin, member or guest.",
                            "Invitations are valid until they are accepted or withdrawn."]),
        ("Make someone an admin", ["Open Settings → Members.",
                                   "Find the person and open the menu beside their name.",
                                   "Choose Make admin. They can now manage members, billing and security."]),
        ("Remove a member", ["Open Settings → Members.",
                             "Open the menu beside their name and choose Remove.",
                             "Their seat is freed at once, and the price changes from the next invoice."]),
    ],
    "Data and privacy": [
        ("Export your workspace", ["Open Settings → Data → Export.",
                                   "Choose a full export or pick projects.",
                                   "You receive an email with a download link when the export is ready; the link "
                                   "works for seven days."]),
        ("Delete your workspace", ["Open Settings → Data → Delete workspace as the owner.",
                                   "Type the workspace name to confirm.",
                                   "The workspace disappears at once for everyone; an export made beforehand is the "
                                   "only copy you will have."]),
    ],
    "Mobile apps": [
        ("Attach a photo from the camera", ["Open a task in the mobile app.",
                                            "Choose the camera icon and take the photo.",
                                            "Crop it if needed and choose Attach."]),
        ("Add the home-screen widget", ["Press and hold an empty part of the home screen.",
                                        "Choose Widgets, find Orbitask and pick the Today widget.",
                                        "Place it where you like; it refreshes on its own."]),
    ],
    "Getting help": [
        ("Contact support", ["Open the Help menu in the app and choose Contact support.",
                             "Describe what you tried and what happened, and attach a screenshot if you can.",
                             "You receive a ticket number by email; replies arrive in the same thread."]),
        ("Give support access to your workspace", ["Open Settings → Security → Support access.",
                                                   "Choose Grant access and pick how long it should last.",
                                                   "You can withdraw access at any time from the same page."]),
    ],
    "Automations and shortcuts": [
        ("Create an automation", ["Open the project and choose Automations.",
                                  "Choose a trigger, such as 'a task moves to Review'.",
                                  "Choose an action, such as 'assign it to the project lead', and save the rule."]),
        ("Pause an automation", ["Open the project's Automations.",
                                 "Switch the rule off. It keeps its settings and can be switched on again."]),
    ],
}

# Five chapters added so the handbook reaches about eleven pages; same shape as above.
CHAPTERS |= {
    "Calendar and time tracking": (
        ["Orbitask can show every task that has a due date on a calendar, and it can record the time people spend "
         "on their tasks. Both features are built in; neither needs an add-on, and both follow the same permissions "
         "as the rest of the project, so a calendar never shows a task its viewer could not open.",
         "The calendar shows one week or one month at a time. Tasks without a due date never appear on it, and a "
         "task with both a start date and a due date is drawn as a bar across the days between them. Dragging a "
         "bar moves both dates by the same number of days; dragging its right end changes only the due date.",
         "Time tracking is switched on for each project by a project admin. Once it is on, every task shows a "
         "timer button and a list of time entries, and each entry records who worked, on which day, for how long, "
         "and whether the time is billable to a client."],
        [("A timer that keeps running for 10 hours without being stopped is stopped automatically, and its entry "
          "is flagged for review by the person who started it.",
          "Timers: stopped automatically after 10 hours.",
          ["What happens if I forget to stop a timer overnight?", "Is there a maximum length for a running timer?"],
          "A timer that runs for 10 hours stops on its own, and its entry is flagged for review.", "10 hours"),
         ("The person who logged a time entry can edit it for 5 days; after that only a project admin can change "
          "it.",
          "Time entries: editable by their author for 5 days, then by project admins only.",
          ["How long do I have to correct hours I logged by mistake?", "Can I edit my time entries later?"],
          "You can edit your own time entries for 5 days; after that only a project admin can change them.",
          "5 days"),
         ("Billable time is rounded up to the nearest 6 minutes on invoices and in reports; the entry itself keeps "
          "the exact time.",
          "Billable time: rounded up to 6 minutes.",
          ["How is tracked time rounded when we bill a client?", "Do you round billable hours?"],
          "Billable time is rounded up to the nearest 6 minutes.", "6 minutes"),
         ("Each member can subscribe to a private iCal feed of their own tasks, which refreshes every 20 minutes.",
          "Personal iCal feed: refreshed every 20 minutes.",
          ["How often does the calendar feed I subscribed to pick up changes?",
           "Can I see my Orbitask tasks in Apple Calendar?"],
          "Your private iCal feed of tasks refreshes every 20 minutes.", "20 minutes"),
         ("Weekly timesheets are due on Friday at 17:00 local time, and a reminder goes out two hours before.",
          "Timesheets: due Fridays at 17:00 local time.",
          ["By what time do I have to send in my weekly hours?", "When are timesheets due?"],
          "Weekly timesheets are due on Friday at 17:00 local time.", ["17:00", "5 pm", "5 p.m."]),
         ("The calendar starts the week on Monday; each member can change that to Sunday or Saturday in their "
          "profile.",
          "Calendar week: starts on Monday (Sunday or Saturday per member).",
          ["Which weekday does the calendar put first?", "Can the calendar week begin on Sunday?"],
          "The calendar week starts on Monday by default, and each member can switch it to Sunday or Saturday.",
          "monday"),
         ]),
    "Reports and dashboards": (
        ["Reports turn the tasks of one or more projects into charts and tables: work completed per week, overdue "
         "tasks by owner, time logged per client, and the burn-up of a milestone. Every report can be filtered by "
         "project, owner, label and date, and every report can be pinned to a dashboard.",
         "A dashboard is a page of report cards that a team looks at together. Each workspace has one shared "
         "dashboard that admins arrange, and each member can build personal dashboards that only they see.",
         "Reports count only what their viewer is allowed to see. Two people looking at the same report can see "
         "different numbers when one of them has access to private projects that the other cannot open."],
        [("A dashboard holds at most 32 report cards.",
          "Dashboards: 32 report cards at most.",
          ["How many charts fit on a single dashboard?", "Is there a limit to the cards on a dashboard?"],
          "A dashboard can hold up to 32 report cards.", "32"),
         ("Report figures are refreshed every 3 minutes; the Refresh button updates a report at once.",
          "Report data: refreshed every 3 minutes.",
          ["How current are the numbers I see in a report?", "How often do reports update?"],
          "Report data refreshes every 3 minutes, or at once with the Refresh button.", "3 minutes"),
         ("A report can be emailed on a schedule to at most 40 recipients, with the report attached as a PDF.",
          "Scheduled report emails: up to 40 recipients, PDF attached.",
          ["How many people can get a report by email on a schedule?",
           "Can I send a report to my whole team every week?"],
          "A scheduled report can be emailed to up to 40 recipients.", "40 recipients"),
         ("Reports can be downloaded as a PDF or as an ODS spreadsheet; there is no Excel download.",
          "Report downloads: PDF or ODS spreadsheet.",
          ["Which spreadsheet format do report downloads come in?", "How do I download a report?"],
          "Reports download as a PDF or as an ODS spreadsheet.", "ods"),
         ("A report can look back at most 3 years; older tasks stay in their projects but are left out of charts.",
          "Report history: 3 years back at most.",
          ["How far into the past can a chart go?", "Can a report include tasks from five years ago?"],
          "Reports can cover at most the last 3 years.", "3 years"),
         ("The burn-up chart forecasts a milestone's finish date once at least 8 tasks in the milestone are done.",
          "Burn-up forecast: shown after 8 completed tasks.",
          ["Why doesn't my milestone chart predict an end date yet?", "When does the burn-up chart show a forecast?"],
          "The burn-up chart forecasts a finish date once 8 tasks in the milestone are done.", "8 tasks"),
         ]),
    "Sharing with clients": (
        ["Agencies and consultants often work with people outside their organisation. Orbitask offers two ways to "
         "do that: guests, who sign in and work inside the projects shared with them, and public links, which show "
         "a read-only view of a project to anyone who has the link.",
         "A client portal gathers the projects shared with one client on a single page with the agency's logo and "
         "colours, so the client does not need to learn the rest of the workspace. Approval requests, files and "
         "comments for the client all appear there.",
         "Everything a guest or a link can see is listed under Settings → Sharing, where it can also be revoked in "
         "one place."],
        [("Public links stop working after 75 days unless the person who made them chooses another date.",
          "Public links: expire after 75 days by default.",
          ["For how long does a read-only project link keep working?", "Do public links expire?"],
          "Public links expire after 75 days unless a different date is chosen.", "75 days"),
         ("A client portal can use the agency's own domain, such as projects.example.com, once the domain is "
          "verified with a TXT record.",
          "Portal custom domain: verified with a TXT record.",
          ["How do I prove we own the web address for our client portal?", "Can my portal use our own domain?"],
          "A portal can use your own domain once you verify it with a TXT record.", "txt record"),
         ("Guests who have not signed in for 120 days lose access automatically, and the project's admins are "
          "told.",
          "Inactive guests: lose access after 120 days.",
          ["What happens to a client login nobody has used for months?", "Do guest accounts expire?"],
          "Guests who have not signed in for 120 days lose access automatically.", "120 days"),
         ("A public link shows at most 500 tasks; a larger project shows its first 500 tasks by due date.",
          "Public links: up to 500 tasks shown.",
          ["Is there a cap on how many tasks a shared link displays?", "Why are tasks missing from my public link?"],
          "A public link shows at most 500 tasks, the first 500 by due date.", "500"),
         ("An approval request sent to a client expires after 11 days if the client has not answered it.",
          "Client approval requests: expire after 11 days.",
          ["How long does a client have to sign off on a deliverable?", "Do approval requests time out?"],
          "A client has 11 days to answer an approval request before it expires.", "11 days"),
         ("The person who made a public link can see its last 100 visits, with the day and the country of each.",
          "Public link visits: the last 100 are listed.",
          ["Can I find out whether anyone opened the link I shared?", "Does Orbitask track views of a public link?"],
          "The link's owner can see its last 100 visits.", "100 visits"),
         ]),
    "Importing and exporting": (
        ["Most teams arrive with their work in another tool or a spreadsheet. The importer reads CSV files and the "
         "exports of Trello, Asana and Jira, and maps their columns and lists to Orbitask projects, sections and "
         "custom fields, showing the mapping for approval before anything is created.",
         "An import runs in the background. The person who started it gets an email with a summary when it "
         "finishes, including every row that could not be imported and the reason.",
         "Exports work the other way: a single project can be exported at any time by its admins, and the whole "
         "workspace by its owner (see Data and privacy)."],
        [("A CSV import can hold up to 20,000 rows per file; larger files can be split and imported one after "
          "the other.",
          "CSV import: 20,000 rows per file.",
          ["What is the largest spreadsheet I can bring in at once?", "Is there a row limit on CSV imports?"],
          "A CSV import can have up to 20,000 rows per file.", ["20,000", "20000"]),
         ("An import can be undone for 48 hours, which removes everything it created.",
          "Undo an import: within 48 hours.",
          ["I brought in the wrong file; is it too late to reverse it?", "Can an import be undone?"],
          "An import can be undone within 48 hours, which removes everything it created.", "48 hours"),
         ("CSV files must be encoded as UTF-8; a file in another encoding is rejected with a message naming its "
          "first unreadable line.",
          "CSV encoding: UTF-8 only.",
          ["Which character encoding does my CSV file need?", "Why was my CSV file rejected?"],
          "CSV files must be encoded as UTF-8.", ["utf-8", "utf8"]),
         ("Dates in CSV files are read as year-month-day, such as 2026-03-31; other date formats are read only "
          "when chosen in the importer.",
          "CSV dates: year-month-day (2026-03-31).",
          ["How should the dates in my spreadsheet be written for the importer?",
           "Which date format does the CSV importer expect?"],
          "Dates are read as year-month-day, such as 2026-03-31.", ["year-month-day", "yyyy-mm-dd", "2026-03-31"]),
         ("A project export is a ZIP file with the tasks as JSON and every attachment; its download link works "
          "for 72 hours.",
          "Project export link: valid for 72 hours.",
          ["How long can I download a project export for?", "Does the export download link expire?"],
          "The project export's download link works for 72 hours.", "72 hours"),
         ("The Trello importer brings across cards, checklists, labels and comments, but not Power-Ups.",
          "Trello import: cards, checklists, labels, comments; no Power-Ups.",
          ["Will my Trello Power-Ups come over when I switch?", "What does the Trello importer bring across?"],
          "The Trello importer brings cards, checklists, labels and comments, but not Power-Ups.",
          ["not power-ups", "power-ups are not", "no power-ups", "without power-ups", "not bring power-ups"]),
         ]),
    "Templates and forms": (
        ["A template is a project saved as a starting point: its sections, custom fields, automations and example "
         "tasks, with every date counted from the day the template is used. A form turns the answers people type "
         "into new tasks in a project, one task per submission.",
         "Templates belong to the workspace, so every member can start a project from one. Only admins can publish "
         "a template to the workspace gallery; members can keep private templates for themselves.",
         "A form can be shared with a link, embedded in a web page, or kept inside the workspace so that only "
         "members can submit it."],
        [("A form can have at most 28 questions.",
          "Forms: 28 questions at most.",
          ["How long can one of my forms be?", "Is there a question limit on forms?"],
          "A form can have up to 28 questions.", "28"),
         ("The workspace gallery holds up to 64 published templates.",
          "Template gallery: 64 templates per workspace.",
          ["How many shared templates can our workspace keep?", "Is there a cap on gallery templates?"],
          "The workspace gallery holds up to 64 templates.", "64"),
         ("A public form accepts at most 33 submissions an hour from one address, which keeps spam out.",
          "Public forms: 33 submissions per hour from one address.",
          ["How often can the same person send my public form in an hour?", "Are public forms protected from spam?"],
          "A public form accepts at most 33 submissions an hour from one address.", "33"),
         ("Files sent through a form can be up to 125 MB each.",
          "Form uploads: 125 MB per file.",
          ["What size of file can someone attach when filling in a form?", "Can people upload files in a form?"],
          "Files sent through a form can be up to 125 MB each.", "125 MB"),
         ("When a template is used, a task whose date would fall on a weekend moves to the Friday before.",
          "Template dates: weekend dates move to the Friday before.",
          ["What happens to template tasks that land on a Saturday?", "Do template dates skip weekends?"],
          "A template task that would fall on a weekend moves to the Friday before.", "friday"),
         ("A signed-in person can edit the answers they sent through a form for 2 hours.",
          "Form answers: editable by the sender for 2 hours.",
          ["Can I still change what I submitted in a form?", "How long can someone fix their form answers?"],
          "A signed-in sender can edit their form answers for 2 hours.", "2 hours"),
         ]),
}

PROCEDURES |= {
    "Calendar and time tracking": [
        ("Log time by hand", ["Open the task and choose Time.",
                              "Choose Add entry, then enter the day, the duration and whether it is billable.",
                              "Save. The entry counts towards the week's timesheet at once."]),
        ("Submit a timesheet", ["Open Time → My timesheet.",
                                "Check each day's entries and fix any flagged ones.",
                                "Choose Submit. Your project admin is asked to approve it."]),
    ],
    "Reports and dashboards": [
        ("Pin a report to a dashboard", ["Open the report and set its filters.",
                                         "Choose Pin and pick the dashboard.",
                                         "Drag the card to where the team will see it first."]),
        ("Schedule a report email", ["Open the report and choose Schedule.",
                                     "Pick the day and time and add the recipients.",
                                     "Save. The first email goes out at the next scheduled time."]),
    ],
    "Sharing with clients": [
        ("Invite a client as a guest", ["Open the project and choose Share.",
                                        "Enter the client's email address and choose Guest.",
                                        "The client gets an invitation and sees only this project."]),
        ("Revoke a public link", ["Open Settings → Sharing → Public links.",
                                  "Find the link and choose Revoke. Anyone who opens it afterwards sees a notice "
                                  "that it no longer works."]),
    ],
    "Importing and exporting": [
        ("Import a CSV file", ["Choose Import in the sidebar, then CSV.",
                               "Upload the file and match each column to a task field.",
                               "Review the preview and start the import. You get an email when it is done."]),
        ("Export a project", ["Open the project's menu and choose Export.",
                              "Choose whether to include attachments.",
                              "Download the ZIP file from the email you receive."]),
    ],
    "Templates and forms": [
        ("Save a project as a template", ["Open the project's menu and choose Save as template.",
                                          "Choose which sections, fields and example tasks to keep.",
                                          "Keep it private, or, as an admin, publish it to the gallery."]),
        ("Create a form", ["Open the project and choose Forms → New form.",
                           "Add the questions and choose which task field each answer fills.",
                           "Share the link, embed the form, or keep it for members only."]),
    ],
}


INTRODUCTION = """# About this handbook

This handbook describes Orbitask, the project and task manager made by Fernhill Software, as it works today for
the people who use it every day and the people who look after a workspace. Each chapter covers one part of the
product: what it does, the limits that apply to it, and step-by-step instructions for the most common jobs.

Orbitask is used by small teams that plan their week together, by agencies that share work with clients, and by
larger organisations that need single sign-on, audit logs and contracts. The same app runs in the browser, on
Windows, macOS and Linux, and on iPhone and Android phones.

Words in this handbook have the meaning they have in the app. A workspace is the home of one organisation in
Orbitask: its members, projects, files and settings. A project is a collection of tasks with its own views, custom
fields and automations. A task is one piece of work with one owner. A member is a person who belongs to the
workspace and pays for a seat on a paid plan; a guest is a person from outside the organisation who sees only what
is shared with them. The owner is the one member who can delete the workspace, and admins help the owner manage it.

The quick reference at the end lists the figures from every chapter in one place.
"""
