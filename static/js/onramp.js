// Onramp's only script (no inline scripts: the Content Security Policy forbids them).
(function () {
  "use strict";

  function slugify(text) {
    return (text || "").toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40).replace(/-+$/g, "");
  }

  // Tech leads get AdministratorAccess and Billing: the members' policy choice does not apply.
  function showPolicy(member) {
    var role = member.querySelector("select[name$='-role']");
    var policy = member.querySelector("[data-policy]");
    if (role && policy) { policy.hidden = role.value === "tech_lead"; }
  }

  function setupOnboardForm(form) {
    var dataNode = document.getElementById("customers-data");
    var customers = dataNode ? JSON.parse(dataNode.textContent) : [];
    var byId = {};
    customers.forEach(function (c) { byId[String(c.id)] = c; });
    var field = function (name) { return form.querySelector("[name='" + name + "']"); };
    var touched = {};
    ["app_name", "bucket", "ecr_repository", "account_alias"].forEach(function (name) {
      var input = field(name);
      if (input && input.value) { touched[name] = true; }
      if (input) { input.addEventListener("input", function () { touched[name] = input.value !== ""; }); }
    });

    function fillDefaults(slug) {
      if (!slug) { return; }
      var defaults = { app_name: slug, bucket: slug + "-media", ecr_repository: slug, account_alias: slug };
      Object.keys(defaults).forEach(function (name) {
        var input = field(name);
        if (input && !touched[name]) { input.value = defaults[name]; }
      });
      var origin = field("app_origin");
      if (origin && !origin.value) { origin.placeholder = "https://" + slug + ".herokuapp.com"; }
    }

    var customer = field("customer");
    var newName = field("new_customer_name");
    if (customer) {
      customer.addEventListener("change", function () {
        var c = byId[customer.value];
        if (!c) { return; }
        var set = function (name, value) { var input = field(name); if (input && value) { input.value = value; } };
        set("account_id", c.account_id); set("region", c.region); set("role_arn", c.role_arn);
        set("external_id", c.external_id);
        if (c.alias) { set("account_alias", c.alias); touched.account_alias = true; }
        var radio = form.querySelector("[name='access'][value='" + c.access + "']");
        if (radio) { radio.checked = true; showAccess(); }
        fillDefaults(c.slug);
      });
    }
    if (newName) { newName.addEventListener("input", function () { fillDefaults(slugify(newName.value)); }); }

    // A customer on record makes the new customer's name pointless: hide it.
    function showNewName() {
      var block = document.getElementById("field-new_customer_name");
      if (block && customer) { block.hidden = customer.value !== ""; }
    }
    if (customer) { customer.addEventListener("change", showNewName); showNewName(); }

    // Tech leads do not change a customer's connection: for a customer on record, its fields are read-only.
    function lockConnection() {
      if (!customer || !form.hasAttribute("data-lock-connection")) { return; }
      var locked = customer.value !== "";
      ["role_arn", "external_id", "access_key_id", "secret_access_key"].forEach(function (name) {
        var input = field(name);
        if (input) { input.readOnly = locked; if (!locked) { input.disabled = false; } }
      });
      form.querySelectorAll("[name='access']").forEach(function (r) { r.disabled = locked && !r.checked; });
      var note = form.querySelector("[data-connection-note]");
      if (note) { note.hidden = !locked; }
    }
    if (customer) { customer.addEventListener("change", lockConnection); lockConnection(); }

    form.addEventListener("change", function (event) {
      if (event.target.name && /-role$/.test(event.target.name)) { showPolicy(event.target.closest("[data-member]")); }
    });
    form.querySelectorAll("[data-member]").forEach(showPolicy);

    function showAccess() {
      var checked = form.querySelector("[name='access']:checked");
      var method = checked ? checked.value : "role";
      form.querySelectorAll("[data-access]").forEach(function (block) {
        block.hidden = block.getAttribute("data-access") !== method;
      });
    }
    form.querySelectorAll("[name='access']").forEach(function (r) { r.addEventListener("change", showAccess); });
    showAccess();

    function showScopeWarning() {
      var checked = form.querySelector("[name='media_scope']:checked");
      var warning = form.querySelector("[data-scope-warning]");
      if (warning) { warning.hidden = !(checked && checked.value === "all"); }
    }
    form.querySelectorAll("[name='media_scope']").forEach(function (r) { r.addEventListener("change", showScopeWarning); });
    showScopeWarning();

    var add = document.getElementById("add-member");
    var template = document.getElementById("member-template");
    var total = field("team-TOTAL_FORMS");
    var members = document.getElementById("members");
    if (add && template && total && members) { setupMembers(members, add, template, total); }
  }

  // The team rows: "Add a team member" appends one from the template, "Remove this member" takes one
  // out and numbers the rest again (team-0-…, team-1-…), so the formset sees no gap. Without
  // JavaScript the row's "Remove this member" checkbox does the same on the server.
  var MEMBER_ATTRIBUTES = ["name", "id", "for", "aria-describedby", "data-error-for"];

  function setupMembers(members, add, template, total) {
    function renumber() {
      var rows = members.querySelectorAll("[data-member]");
      rows.forEach(function (row, index) {
        row.querySelectorAll("*").forEach(function (el) {
          MEMBER_ATTRIBUTES.forEach(function (attr) {
            var value = el.getAttribute(attr);
            if (value) { el.setAttribute(attr, value.replace(/team-(\d+|__prefix__)-/g, "team-" + index + "-")); }
          });
        });
        var legend = row.querySelector("legend");
        if (legend) { legend.textContent = "Team member " + (index + 1); }
        var remove = row.querySelector("[data-remove-member]");
        if (remove) {
          remove.id = "remove-team-" + index;
          remove.setAttribute("aria-label", "Remove team member " + (index + 1));
        }
      });
      total.value = String(rows.length);
    }

    function offerRemove(row) {
      var box = row.querySelector("[data-member-delete]");
      var remove = row.querySelector("[data-remove-member]");
      if (box && remove) { box.hidden = true; remove.hidden = false; }
    }

    // A row ticked for removal on a page the server sent back: take it out now.
    members.querySelectorAll("[data-member]").forEach(function (row) {
      var ticked = row.querySelector("[data-member-delete] input:checked");
      if (ticked) { row.remove(); } else { offerRemove(row); }
    });
    renumber();

    add.addEventListener("click", function () {
      var holder = document.createElement("div");
      holder.innerHTML = template.innerHTML;
      var member = holder.firstElementChild;
      members.appendChild(member);
      renumber();
      offerRemove(member);
      showPolicy(member);
      var first = member.querySelector("input:not([type=hidden])");
      if (first) { first.focus(); }
    });

    members.addEventListener("click", function (event) {
      var remove = event.target.closest("[data-remove-member]");
      if (!remove) { return; }
      var row = remove.closest("[data-member]");
      var next = row.nextElementSibling;
      row.remove();
      renumber();
      var focus = next ? next.querySelector("input:not([type=hidden])") : add;
      if (focus) { focus.focus(); }
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) { return navigator.clipboard.writeText(text); }
    // Plain http on another host than localhost: no Clipboard API, the older way still works.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      area.remove();
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  function flash(button, text) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = text;
    setTimeout(function () { button.textContent = label; }, 1500);
  }

  // Buttons that need this script are sent hidden, and shown here. `attribute` names the element the
  // button works on; `act(button, element)` does the work.
  function setupButtons(attribute, act) {
    document.querySelectorAll("[" + attribute + "]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute(attribute));
        if (source) { act(button, source); }
      });
    });
  }

  function copyFrom(button, source) {
    copyText(source.textContent).then(function () { flash(button, "Copied"); },
      function () { flash(button, "Select the text and copy it"); });
  }

  // "Download <app>.env": the file is made here from the text already on the page; the server
  // keeps no copy of the secret to send again.
  function downloadFrom(button, source) {
    var url = URL.createObjectURL(new Blob([source.textContent], { type: "application/octet-stream" }));
    var link = document.createElement("a");
    link.href = url;
    link.download = button.getAttribute("data-filename");
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }

  // The page that shows a secret once: make its history entry the credential's GET page, so a reload
  // or "back" asks the server again (which shows who revealed it) instead of re-posting the reveal.
  function setupRevealedPage() {
    var node = document.querySelector("[data-replace-url]");
    if (node && window.history && history.replaceState) {
      history.replaceState(null, "", node.getAttribute("data-replace-url"));
    }
  }

  // A poll answered by something other than the live fragment (the session expired and the login
  // page came back): load the whole page instead of swapping a page into the table.
  function setupLivePolling() {
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      var xhr = event.detail.xhr;
      if (event.target.id === "run-live" && xhr && xhr.responseURL && !/\/live\/$/.test(new URL(xhr.responseURL).pathname)) {
        event.detail.shouldSwap = false;
        window.location.reload();
      }
    });
  }

  // A form that destroys something (removing the old access key) asks first: its data-confirm is the question.
  // Delegated, so a form that htmx swapped in asks too.
  function setupConfirmations() {
    document.addEventListener("submit", function (event) {
      var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
      if (question && !window.confirm(question)) { event.preventDefault(); }
    }, true);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupLivePolling();
    setupConfirmations();
    var form = document.getElementById("onboard-form");
    if (form) { setupOnboardForm(form); }
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
    setupButtons("data-copy", copyFrom);
    setupButtons("data-download", downloadFrom);
    setupRevealedPage();
  });
})();
