/* GET /ui: the status page (ui/index.html, embedded at build time).
 *
 * The page itself holds no secret and is served without the admin key,
 * but only while the admin endpoints are enabled (the router answers
 * 404 otherwise, as for them). It asks for the key in a login form,
 * keeps it in the page's memory and sends it as "Authorization: Bearer"
 * to the admin JSON endpoints; /metrics and /ready are read as they
 * are. */
#include "api.h"
#include "server.h"
#include "ui_html.h"
#include "worker.h"

void rl_api_ui(rl_worker_t *w, rl_http_req_t *req)
{
    /* Inline script and style only; fetches to this origin only. */
    static const char *const names[] = {
        "Content-Security-Policy", "Cache-Control", "X-Content-Type-Options",
        "Referrer-Policy"};
    static const char *const values[] = {
        "default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
        "frame-ancestors 'none'; form-action 'none'",
        "no-store", "nosniff", "no-referrer"};

    rl_http_reply(req, 200, names, values, 4, "text/html; charset=utf-8",
                  RL_UI_HTML, RL_UI_HTML_LEN);
}
