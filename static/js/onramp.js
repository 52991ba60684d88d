// Onramp's only script (no inline scripts: the Content Security Policy forbids them).
(function () {
  "use strict";

  function slugify(text) {
    return (text || "").toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40).replace(/-+$/g, "");
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

    // Tech leads get AdministratorAccess and Billing: the members' policy choice does not apply.
    function showPolicy(member) {
      var role = member.querySelector("select[name$='-role']");
      var policy = member.querySelector("[data-policy]");
      if (role && policy) { policy.hidden = role.value === "tech_lead"; }
    }
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
    if (add && template && total) {
      add.addEventListener("click", function () {
        var index = parseInt(total.value, 10);
        var html = template.innerHTML.replace(/__prefix__/g, String(index));
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var member = holder.firstElementChild;
        document.getElementById("members").appendChild(member);
        total.value = String(index + 1);
        showPolicy(member);
        var first = member.querySelector("input");
        if (first) { first.focus(); }
      });
    }
  }

  function setupCopy() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source || !navigator.clipboard) { return; }
        navigator.clipboard.writeText(source.textContent).then(function () {
          var label = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1500);
        });
      });
    });
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

  document.addEventListener("DOMContentLoaded", function () {
    setupLivePolling();
    var form = document.getElementById("onboard-form");
    if (form) { setupOnboardForm(form); }
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
    setupCopy();
    setupRevealedPage();
  });
})();
