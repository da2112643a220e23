// First-run install and login: the two pages a visitor without a session can see.
import { api } from "../api.js";
import { t } from "../i18n.js";
import { wireForm } from "../forms.js";

function formView(root, html, submit) {
  root.innerHTML = html;
  wireForm(root.querySelector("form"), submit);
  root.querySelector("input").focus();
}

export const install = {
  mount(root, ctx) {
    formView(
      root,
      `<section class="card narrow">
        <h1 data-i18n="install.title"></h1>
        <p class="muted" data-i18n="install.intro"></p>
        <form id="install-form">
          <label><span data-i18n="install.login"></span><input name="login" autocomplete="username" required maxlength="200"></label>
          <label><span data-i18n="install.password"></span>
            <input name="password" type="password" autocomplete="new-password" required minlength="8"></label>
          <label><span data-i18n="install.confirm"></span>
            <input name="confirm" type="password" autocomplete="new-password" required minlength="8"></label>
          <button type="submit" data-i18n="install.submit"></button>
          <p class="status" role="alert"></p>
        </form>
      </section>`,
      async (fields) => {
        if (fields.get("password") !== fields.get("confirm")) throw new Error(t("install.mismatch"));
        const user = await api("/api/v2/install", {
          method: "POST",
          body: { login: fields.get("login"), password: fields.get("password") },
        });
        await ctx.onLoggedIn(user);
      },
    );
  },
};

export const login = {
  mount(root, ctx) {
    formView(
      root,
      `<section class="card narrow">
        <h1 data-i18n="login.title"></h1>
        <form id="login-form">
          <label><span data-i18n="login.login"></span><input name="login" autocomplete="username" required></label>
          <label><span data-i18n="login.password"></span>
            <input name="password" type="password" autocomplete="current-password" required></label>
          <button type="submit" data-i18n="login.submit"></button>
          <p class="status" role="alert"></p>
        </form>
      </section>`,
      async (fields) => {
        const user = await api("/api/v2/login", {
          method: "POST",
          body: { login: fields.get("login"), password: fields.get("password") },
        });
        await ctx.onLoggedIn(user);
      },
    );
  },
};
