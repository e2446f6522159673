"""The made-up Orbitask handbook's procedures and introduction (read by make_handbook.py)."""

from __future__ import annotations

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

# the five chapters added in handbook_facts.py
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
