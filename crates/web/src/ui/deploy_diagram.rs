//! The deployment diagram, rendered on the server as SVG: a pure function
//! of a plain [`Diagram`] (no broker, no I/O), so the same input always
//! gives the same bytes. Nodes are boxes laid out in columns by dependency
//! depth (a node's column is one past the deepest node it depends on;
//! within a column, by name), each holding one small square per VM coloured
//! by its state; mappings are solid arrows from the node publishing the
//! output to the node reading it, labelled `output → input`; `depends_on`
//! are dashed arrows. Every text that comes from a user (node, instance,
//! parameter names, states) is escaped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What the diagram shows.
#[derive(Clone, Debug, Default)]
pub struct Diagram {
    pub nodes: Vec<DiagramNode>,
    pub mappings: Vec<DiagramMapping>,
}

/// One node of the application.
#[derive(Clone, Debug, Default)]
pub struct DiagramNode {
    pub name: String,
    /// Connector instance and type, shown under the name (`sandbox · m1.small`).
    pub placement: String,
    /// The node's state (`waiting`, `launching`, `running`, `ready`, `failed`).
    pub state: String,
    /// The nodes it is launched after.
    pub depends_on: Vec<String>,
    pub members: Vec<DiagramMember>,
}

/// One VM of a node.
#[derive(Clone, Debug, Default)]
pub struct DiagramMember {
    /// Its index in the node (1-based).
    pub idx: i64,
    /// Its state as shown (the VM's state, else the member's: `held`, `ready`...).
    pub state: String,
    /// The tooltip (VM id, what it waits on...).
    pub title: String,
}

/// `to.input` is read from `from.output`.
#[derive(Clone, Debug, Default)]
pub struct DiagramMapping {
    pub from: String,
    pub output: String,
    pub to: String,
    pub input: String,
}

const BOX_W: i64 = 232;
const COL_GAP: i64 = 200;
const ROW_GAP: i64 = 36;
const MARGIN: i64 = 24;
const HEADER_H: i64 = 58;
const SQ: i64 = 17;
const SQ_GAP: i64 = 3;
/// Vertical room per edge along a box's side: a mapping's label (11 px)
/// sits above its line, clear of the next one.
const LANE: i64 = 21;
const PER_ROW: i64 = 10;
const LEGEND_H: i64 = 30;

/// Escapes text for SVG/XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A state's fill colour (VM states and member/node states alike).
pub fn colour(state: &str) -> &'static str {
    match state {
        "ready" => "#15803d",
        "running" => "#2563eb",
        "pending" | "requested" | "launching" | "starting" | "rebooting" => "#d97706",
        "held" | "waiting" => "#9ca3af",
        // A node some of whose VMs were stopped or ended outside its
        // deployment, and those slots: each a colour of its own.
        "degraded" => "#c2410c",
        "stopped" => "#1d4ed8",
        "ended" => "#7c3aed",
        "stopping" | "shutting-down" | "terminating" => "#6b7280",
        "failed" | "error" => "#b91c1c",
        "terminated" => "#374151",
        _ => "#a3a3a3",
    }
}

/// Where a node's box sits.
#[derive(Clone, Copy, Debug)]
struct Place {
    x: i64,
    y: i64,
    h: i64,
}

/// The height of a box holding `n` VMs.
fn box_height(n: usize) -> i64 {
    let n = n as i64;
    let rows = if n == 0 { 1 } else { (n + PER_ROW - 1) / PER_ROW };
    HEADER_H - 12 + rows * (SQ + SQ_GAP) + 8
}

/// Each node's column: 0 for a node depending on none, else one past the
/// deepest of those it depends on (unknown names ignored; a cycle, which
/// validation refuses, is cut).
fn columns(d: &Diagram) -> BTreeMap<&str, usize> {
    let deps: BTreeMap<&str, Vec<&str>> =
        d.nodes.iter().map(|n| (n.name.as_str(), n.depends_on.iter().map(String::as_str).collect())).collect();
    fn depth<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        memo: &mut BTreeMap<&'a str, usize>,
        seen: &mut BTreeSet<&'a str>,
    ) -> usize {
        if let Some(c) = memo.get(n) {
            return *c;
        }
        if !seen.insert(n) {
            return 0;
        }
        let c = deps
            .get(n)
            .map(|ds| ds.iter().filter(|d| deps.contains_key(*d)).map(|d| depth(d, deps, memo, seen) + 1).max().unwrap_or(0))
            .unwrap_or(0);
        seen.remove(n);
        memo.insert(n, c);
        c
    }
    let mut memo = BTreeMap::new();
    for n in &d.nodes {
        depth(&n.name, &deps, &mut memo, &mut BTreeSet::new());
    }
    memo
}

/// The layout: each node's place, and the picture's size.
fn layout(d: &Diagram) -> (BTreeMap<&str, Place>, i64, i64) {
    let cols = columns(d);
    // Edges leaving and entering each node: its side must hold them apart.
    let mut lanes: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let edges = d
        .nodes
        .iter()
        .flat_map(|n| n.depends_on.iter().map(move |dep| (dep.as_str(), n.name.as_str())))
        .chain(d.mappings.iter().map(|m| (m.from.as_str(), m.to.as_str())));
    for (from, to) in edges {
        lanes.entry(from).or_default().0 += 1;
        lanes.entry(to).or_default().1 += 1;
    }
    let mut by_col: BTreeMap<usize, Vec<&DiagramNode>> = BTreeMap::new();
    for n in &d.nodes {
        by_col.entry(cols.get(n.name.as_str()).copied().unwrap_or(0)).or_default().push(n);
    }
    let mut places = BTreeMap::new();
    let mut height = 0;
    let mut width = 0;
    for (col, nodes) in &mut by_col {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let x = MARGIN + (*col as i64) * (BOX_W + COL_GAP);
        let mut y = MARGIN;
        for n in nodes.iter() {
            let (o, i) = lanes.get(n.name.as_str()).copied().unwrap_or_default();
            let h = box_height(n.members.len()).max(22 + o.max(i) * LANE + 4);
            places.insert(n.name.as_str(), Place { x, y, h });
            y += h + ROW_GAP;
        }
        height = height.max(y - ROW_GAP + MARGIN);
        width = width.max(x + BOX_W + MARGIN);
    }
    (places, width.max(2 * MARGIN + BOX_W), height.max(2 * MARGIN + HEADER_H) + LEGEND_H)
}

/// Where the `lane`th edge leaving or entering a box of height `h` meets
/// it (edges are spread down its side, wrapping when it has no more room).
fn lane_y(p: Place, lane: i64) -> i64 {
    let room = ((p.h - 26) / LANE).max(1);
    p.y + 22 + (lane % room) * LANE
}

/// A curve from `a` (its `out`th edge leaving) to `b` (its `inn`th edge
/// entering), and where its label starts: from the right side of a box to
/// the left side of one in a later column, else a loop out on the right.
fn curve(a: Place, out: i64, b: Place, inn: i64) -> (String, i64, i64) {
    let (y1, y2) = (lane_y(a, out), lane_y(b, inn));
    let x1 = a.x + BOX_W;
    if b.x > a.x {
        // Straight out of the box for the label, then a bend to the target.
        let x2 = b.x - 2;
        let xs = x1 + COL_GAP - 70;
        let mx = (xs + x2) / 2;
        (format!("M{x1},{y1} H{xs} C{mx},{y1} {mx},{y2} {x2},{y2}"), x1 + 6, y1 - 3)
    } else {
        // Same column (or backwards): a loop out on the right.
        let x2 = b.x + BOX_W + 2;
        let bulge = a.x + BOX_W + 50 + out * 8;
        (format!("M{x1},{y1} C{bulge},{y1} {bulge},{y2} {x2},{y2}"), x1 + 6, y1 - 3)
    }
}

/// The diagram as an SVG element (to be placed in a page as it is).
pub fn render(d: &Diagram) -> String {
    let (places, width, height) = layout(d);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="deploy-diagram" role="img" aria-labelledby="diagram-title" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="12">"##
    );
    let _ = write!(
        s,
        r##"<title id="diagram-title">The deployment's {} node(s), their VMs and how parameters flow between them</title>"##,
        d.nodes.len()
    );
    s.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1f5fbf"/></marker><marker id="arrow-dep" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>"##,
    );
    // Edges first, so boxes are drawn over their ends: dependencies, then
    // mappings, each spread down the sides of the boxes it joins.
    let mut deps: Vec<(&str, &str)> = Vec::new();
    for n in &d.nodes {
        for dep in &n.depends_on {
            deps.push((dep.as_str(), n.name.as_str()));
        }
    }
    deps.sort_unstable();
    deps.dedup();
    let mut maps: Vec<&DiagramMapping> = d.mappings.iter().collect();
    maps.sort_by(|a, b| (&a.from, &a.to, &a.input, &a.output).cmp(&(&b.from, &b.to, &b.input, &b.output)));
    /// The next lanes of an edge from `from` to `to`: (leaving, entering).
    fn next(from: &str, to: &str, outs: &mut BTreeMap<String, i64>, ins: &mut BTreeMap<String, i64>) -> (i64, i64) {
        let o = outs.entry(from.to_string()).or_insert(0);
        let i = ins.entry(to.to_string()).or_insert(0);
        let lanes = (*o, *i);
        *o += 1;
        *i += 1;
        lanes
    }
    let (mut outs, mut ins) = (BTreeMap::new(), BTreeMap::new());
    for (from, to) in &deps {
        let (Some(a), Some(b)) = (places.get(from), places.get(to)) else { continue };
        let (o, i) = next(from, to, &mut outs, &mut ins);
        let (path, _, _) = curve(*a, o, *b, i);
        let _ = write!(
            s,
            r##"<path class="depends-on" data-from="{f}" data-to="{t}" d="{path}" fill="none" stroke="#6b7280" stroke-width="1.5" stroke-dasharray="6 4" marker-end="url(#arrow-dep)"><title>{t} depends on {f}</title></path>"##,
            f = escape(from),
            t = escape(to),
        );
    }
    for m in maps {
        let (Some(a), Some(b)) = (places.get(m.from.as_str()), places.get(m.to.as_str())) else { continue };
        let (o, i) = next(&m.from, &m.to, &mut outs, &mut ins);
        let (path, lx, ly) = curve(*a, o, *b, i);
        let label = format!("{} → {}", m.output, m.input);
        let _ = write!(
            s,
            r##"<g class="mapping" data-from="{f}" data-to="{t}" data-param="{i}"><path d="{path}" fill="none" stroke="#1f5fbf" stroke-width="2" marker-end="url(#arrow)"/><text x="{lx}" y="{ly}" font-size="11" fill="#1f5fbf" paint-order="stroke" stroke="#f6f7f9" stroke-width="3">{label}</text><title>{t}.{i} is read from {f}.{o}</title></g>"##,
            f = escape(&m.from),
            t = escape(&m.to),
            i = escape(&m.input),
            o = escape(&m.output),
            label = escape(&label),
        );
    }
    // The nodes, in layout order (column, then name).
    let mut order: Vec<(&DiagramNode, Place)> = d.nodes.iter().filter_map(|n| places.get(n.name.as_str()).map(|p| (n, *p))).collect();
    order.sort_by(|(a, pa), (b, pb)| (pa.x, pa.y, &a.name).cmp(&(pb.x, pb.y, &b.name)));
    for (n, p) in order {
        let Place { x, y, h } = p;
        let name = escape(&n.name);
        let state = escape(&n.state);
        let _ = write!(
            s,
            r##"<g class="node" data-node="{name}" data-state="{state}"><rect x="{x}" y="{y}" width="{BOX_W}" height="{h}" rx="6" fill="#ffffff" stroke="{c}" stroke-width="2"/><rect x="{x}" y="{y}" width="6" height="{h}" rx="3" fill="{c}"/>"##,
            c = colour(&n.state)
        );
        let _ = write!(s, r##"<text x="{}" y="{}" font-weight="700" font-size="14" fill="#1d2330">{name}</text>"##, x + 14, y + 19);
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end" font-size="11" fill="{}">{state}</text>"##,
            x + BOX_W - 8,
            y + 19,
            colour(&n.state)
        );
        let vms = match n.members.len() {
            1 => "1 VM".to_string(),
            k => format!("{k} VMs"),
        };
        let _ = write!(s, r##"<text x="{}" y="{}" font-size="11" fill="#5b6475">{} · {vms}</text>"##, x + 14, y + 37, escape(&n.placement));
        let mut members = n.members.clone();
        members.sort_by_key(|m| m.idx);
        for (k, m) in members.iter().enumerate() {
            let k = k as i64;
            let mx = x + 14 + (k % PER_ROW) * (SQ + SQ_GAP);
            let my = y + HEADER_H - 12 + (k / PER_ROW) * (SQ + SQ_GAP);
            let ms = escape(&m.state);
            let _ = write!(
                s,
                r##"<g class="member" data-member="{name}.{idx}" data-state="{ms}"><rect x="{mx}" y="{my}" width="{SQ}" height="{SQ}" rx="3" fill="{c}"/><text x="{tx}" y="{ty}" text-anchor="middle" font-size="9" fill="#ffffff">{idx}</text><title>{name} #{idx}: {ms}{sep}{title}</title></g>"##,
                idx = m.idx,
                c = colour(&m.state),
                tx = mx + SQ / 2,
                ty = my + 13,
                sep = if m.title.is_empty() { "" } else { " — " },
                title = escape(&m.title),
            );
        }
        if n.members.is_empty() {
            let _ = write!(s, r##"<text x="{}" y="{}" font-size="11" fill="#5b6475">no VMs</text>"##, x + 14, y + HEADER_H);
        }
        s.push_str("</g>");
    }
    // The legend.
    let ly = height - LEGEND_H + 10;
    let mut lx = MARGIN;
    s.push_str(r##"<g class="legend">"##);
    for st in ["held", "pending", "running", "ready", "degraded", "stopped", "ended", "failed", "terminated"] {
        let _ = write!(
            s,
            r##"<rect x="{lx}" y="{ly}" width="12" height="12" rx="2" fill="{}"/><text x="{}" y="{}" font-size="11" fill="#5b6475">{st}</text>"##,
            colour(st),
            lx + 16,
            ly + 10
        );
        lx += 24 + 7 * st.len() as i64 + 10;
    }
    let _ = write!(
        s,
        r##"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="#1f5fbf" stroke-width="2"/><text x="{}" y="{}" font-size="11" fill="#5b6475">mapping</text>"##,
        lx + 24,
        lx + 28,
        ly + 10,
        y = ly + 6
    );
    lx += 90;
    let _ = write!(
        s,
        r##"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="#6b7280" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{}" y="{}" font-size="11" fill="#5b6475">depends on</text>"##,
        lx + 24,
        lx + 28,
        ly + 10,
        y = ly + 6
    );
    s.push_str("</g></svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(idx: i64, state: &str) -> DiagramMember {
        DiagramMember { idx, state: state.into(), title: format!("vm-{idx:016x}") }
    }

    fn lamp() -> Diagram {
        Diagram {
            nodes: vec![
                DiagramNode {
                    name: "web".into(),
                    placement: "sandbox · m1.small".into(),
                    state: "waiting".into(),
                    depends_on: vec!["db".into()],
                    members: vec![member(2, "held"), member(1, "held")],
                },
                DiagramNode {
                    name: "db".into(),
                    placement: "sandbox · m1.small".into(),
                    state: "running".into(),
                    depends_on: vec![],
                    members: vec![member(1, "running")],
                },
            ],
            mappings: vec![
                DiagramMapping { from: "db".into(), output: "hostname".into(), to: "web".into(), input: "db_host".into() },
                DiagramMapping { from: "db".into(), output: "port".into(), to: "web".into(), input: "db_port".into() },
            ],
        }
    }

    /// The `x` attribute of the first `<rect` after `marker`.
    fn x_of(svg: &str, marker: &str) -> i64 {
        let at = svg.find(marker).unwrap_or_else(|| panic!("{marker} missing"));
        let rest = &svg[at..];
        let x = rest.find(" x=\"").unwrap() + 4;
        rest[x..].split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn degraded_and_the_stopped_and_ended_slots_have_colours_of_their_own() {
        let others = ["ready", "running", "pending", "held", "stopping", "failed", "terminated", "unknown"];
        let own = ["degraded", "stopped", "ended"];
        for st in own {
            assert!(others.iter().all(|o| colour(o) != colour(st)), "{st}");
            assert_eq!(own.iter().filter(|o| colour(o) == colour(st)).count(), 1, "{st}");
        }
    }

    #[test]
    fn every_node_and_vm_is_drawn_with_its_state() {
        let svg = render(&lamp());
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains(r#"data-node="db" data-state="running""#), "{svg}");
        assert!(svg.contains(r#"data-node="web" data-state="waiting""#), "{svg}");
        assert!(svg.contains(r#"data-member="db.1" data-state="running""#));
        assert!(svg.contains(r#"data-member="web.1" data-state="held""#));
        assert!(svg.contains(r#"data-member="web.2" data-state="held""#));
        assert_eq!(svg.matches(r#"class="member""#).count(), 3);
        assert!(svg.contains("2 VMs") && svg.contains("1 VM"));
        assert!(svg.contains(colour("running")) && svg.contains(colour("held")));
        // Members in index order within their node.
        assert!(svg.find("data-member=\"web.1\"").unwrap() < svg.find("data-member=\"web.2\"").unwrap());
    }

    #[test]
    fn mappings_are_arrows_and_dependencies_dashed() {
        let svg = render(&lamp());
        assert_eq!(svg.matches(r#"<g class="mapping""#).count(), 2, "{svg}");
        assert!(svg.contains(r#"data-from="db" data-to="web" data-param="db_host""#));
        assert!(svg.contains("hostname → db_host") && svg.contains("port → db_port"));
        assert_eq!(svg.matches(r#"marker-end="url(#arrow)""#).count(), 2);
        assert_eq!(svg.matches(r#"class="depends-on""#).count(), 1);
        assert!(svg.contains("stroke-dasharray=\"6 4\" marker-end"));
        // Mapping to a node not in the diagram: skipped, not a panic.
        let mut d = lamp();
        d.mappings.push(DiagramMapping { from: "nope".into(), output: "x".into(), to: "web".into(), input: "y".into() });
        assert_eq!(render(&d).matches(r#"<g class="mapping""#).count(), 2);
    }

    #[test]
    fn text_is_escaped() {
        let mut d = lamp();
        d.nodes[1].placement = "<script>alert('x')</script> & \"q\"".into();
        d.nodes[1].members[0].title = "waits on <db_host>".into();
        d.mappings[0].input = "a<b".into();
        let svg = render(&d);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"));
        assert!(svg.contains("waits on &lt;db_host&gt;"));
        assert!(svg.contains("hostname → a&lt;b"));
        assert_eq!(escape("\u{1}x"), "\u{fffd}x");
    }

    #[test]
    fn the_layout_follows_dependencies_and_is_deterministic() {
        let d = lamp();
        let svg = render(&d);
        // db before web: its column is to the left, and it is drawn first.
        assert!(x_of(&svg, r#"data-node="db""#) < x_of(&svg, r#"data-node="web""#));
        assert!(svg.find(r#"data-node="db""#).unwrap() < svg.find(r#"data-node="web""#).unwrap());
        // The same input in any order gives the same bytes.
        let mut shuffled = d.clone();
        shuffled.nodes.reverse();
        shuffled.mappings.reverse();
        assert_eq!(render(&shuffled), svg);
        assert_eq!(render(&d), svg);
        // A chain of three: three columns; two independent nodes share one.
        let chain = Diagram {
            nodes: vec![
                DiagramNode { name: "c".into(), depends_on: vec!["b".into()], ..Default::default() },
                DiagramNode { name: "b".into(), depends_on: vec!["a".into()], ..Default::default() },
                DiagramNode { name: "a".into(), ..Default::default() },
                DiagramNode { name: "z".into(), ..Default::default() },
            ],
            mappings: vec![],
        };
        let svg = render(&chain);
        let (a, b, c, z) = (
            x_of(&svg, r#"data-node="a""#),
            x_of(&svg, r#"data-node="b""#),
            x_of(&svg, r#"data-node="c""#),
            x_of(&svg, r#"data-node="z""#),
        );
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a, z);
        assert!(svg.contains("no VMs"));
    }

    #[test]
    fn a_cycle_or_self_mapping_does_not_hang() {
        let d = Diagram {
            nodes: vec![
                DiagramNode { name: "a".into(), depends_on: vec!["b".into()], ..Default::default() },
                DiagramNode { name: "b".into(), depends_on: vec!["a".into()], ..Default::default() },
            ],
            mappings: vec![DiagramMapping { from: "a".into(), output: "o".into(), to: "a".into(), input: "i".into() }],
        };
        let svg = render(&d);
        assert_eq!(svg.matches(r#"class="node""#).count(), 2);
        assert_eq!(svg.matches(r#"<g class="mapping""#).count(), 1);
    }

    #[test]
    fn a_hundred_vms_fit_in_their_box() {
        let d = Diagram {
            nodes: vec![DiagramNode {
                name: "n".into(),
                state: "ready".into(),
                members: (1..=100).map(|i| member(i, "ready")).collect(),
                ..Default::default()
            }],
            mappings: vec![],
        };
        let svg = render(&d);
        assert_eq!(svg.matches(r#"class="member""#).count(), 100);
        assert_eq!(box_height(100), HEADER_H - 12 + 10 * (SQ + SQ_GAP) + 8);
        // Ten squares a row fit in the box.
        const { assert!(14 + PER_ROW * (SQ + SQ_GAP) - SQ_GAP <= BOX_W - 8) };
    }
}
