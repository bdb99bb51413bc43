//! Dependencies inside the agent run one way.
//!
//! The test reads `src/` with syn and draws a graph of which file uses which: every path
//! that starts with `crate::`, `pptp_agent::`, `self::`, `super::`, a child module or a
//! name brought in by `use` (in code, in types and in macro arguments) is followed, through
//! `pub use` re-exports, to the file that defines the item. Test code (`#[cfg(test)]`) is
//! left out. It fails, naming the files that cause it, on:
//!
//! - a top-level module importing from a higher layer of [`LAYERS`] (the binary's `cli`
//!   is part of the graph through its `pptp_agent::` paths);
//! - a cycle between top-level modules (within one layer too);
//! - a cycle between the files of one module (`mod.rs` counts as one of its files; a
//!   nested module counts as one file of its parent).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// Top-level modules, lowest layer first; a module may use its own layer and those below.
const LAYERS: &[(&str, &[&str])] = &[
    ("helpers", &["escape", "inet", "diag"]),
    (
        "protocols",
        &[
            "gre", "pptp", "ppp", "mppe", "dhcp", "demand", "auth", "radius", "guard",
        ],
    ),
    ("engine", &["engine"]),
    ("kernel and shell", &["dataplane", "runtime"]),
    ("configuration", &["config"]),
    ("operator", &["api"]),
    ("command line", &["cli"]),
];

type ModPath = Vec<String>;

/// One source file of the crate.
#[derive(Default)]
struct Source {
    /// Every name a `use` brings into scope: local name -> absolute path (None: another crate).
    imports: BTreeMap<String, Option<ModPath>>,
    /// Absolute paths of the file's private `use`s (`pub use` re-exports only pass through).
    private_uses: Vec<ModPath>,
    /// Paths named in code: (scope in the file, as written).
    paths: Vec<(Vec<String>, Vec<String>)>,
    /// `#[cfg(test)] mod name;` declarations.
    test_children: Vec<String>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().trim() == "test")
    })
}

/// Collects `use`s and paths, skipping test items. Inline modules are part of their
/// file; what is written in them is read relative to them (`scope`).
#[derive(Default)]
struct Collector {
    scope: Vec<String>,
    /// `use` trees: (scope, public, local name, path as written).
    uses: Vec<(Vec<String>, bool, String, Vec<String>)>,
    /// Paths in code: (scope, path as written).
    paths: Vec<(Vec<String>, Vec<String>)>,
    test_children: Vec<String>,
}

impl Collector {
    fn expand(
        tree: &syn::UseTree,
        prefix: Vec<String>,
        public: bool,
        out: &mut Vec<(bool, String, Vec<String>)>,
    ) {
        let join = |ident: &syn::Ident| {
            let mut p = prefix.clone();
            p.push(ident.to_string());
            p
        };
        match tree {
            syn::UseTree::Path(p) => Self::expand(&p.tree, join(&p.ident), public, out),
            syn::UseTree::Name(n) if n.ident == "self" => {
                let name = prefix.last().cloned().unwrap_or_default();
                out.push((public, name, prefix));
            }
            syn::UseTree::Name(n) => out.push((public, n.ident.to_string(), join(&n.ident))),
            syn::UseTree::Rename(r) if r.ident == "self" => {
                out.push((public, r.rename.to_string(), prefix))
            }
            syn::UseTree::Rename(r) => out.push((public, r.rename.to_string(), join(&r.ident))),
            syn::UseTree::Glob(_) => out.push((public, "*".into(), prefix)),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    Self::expand(t, prefix.clone(), public, out);
                }
            }
        }
    }

    /// Sequences `a::b::c` in a macro's tokens.
    fn token_paths(&mut self, tokens: TokenStream) {
        let mut current: Vec<String> = Vec::new();
        let mut colons = 0;
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) if current.is_empty() || colons == 2 => {
                    current.push(i.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' && !current.is_empty() && colons < 2 => {
                    colons += 1
                }
                other => {
                    self.flush(&mut current);
                    colons = 0;
                    match other {
                        TokenTree::Group(g) => self.token_paths(g.stream()),
                        TokenTree::Ident(i) => current.push(i.to_string()),
                        _ => {}
                    }
                }
            }
        }
        self.flush(&mut current);
    }

    fn flush(&mut self, current: &mut Vec<String>) {
        if current.len() > 1 {
            self.paths
                .push((self.scope.clone(), std::mem::take(current)));
        }
        current.clear();
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Type(t) => &t.attrs,
            syn::Item::Macro(m) => &m.attrs,
            _ => return visit::visit_item(self, item),
        };
        if is_cfg_test(attrs) {
            if let syn::Item::Mod(m) = item {
                if m.content.is_none() {
                    self.test_children.push(m.ident.to_string());
                }
            }
            return;
        }
        if let syn::Item::Mod(m) = item {
            self.scope.push(m.ident.to_string());
            visit::visit_item(self, item);
            self.scope.pop();
            return;
        }
        visit::visit_item(self, item);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if let syn::ImplItem::Fn(f) = item {
            if is_cfg_test(&f.attrs) {
                return;
            }
        }
        visit::visit_impl_item(self, item);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let public = !matches!(item.vis, syn::Visibility::Inherited);
        let mut uses = Vec::new();
        Self::expand(&item.tree, Vec::new(), public, &mut uses);
        let scope = &self.scope;
        self.uses
            .extend(uses.into_iter().map(|(p, n, w)| (scope.clone(), p, n, w)));
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let written = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.paths.push((self.scope.clone(), written));
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.token_paths(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}

/// The crate's module tree: `src/lib.rs` and `src/main.rs` are the (shared) root.
struct Crate {
    sources: BTreeMap<ModPath, Source>,
}

impl Crate {
    fn read(src: &Path) -> Self {
        let mut files = Vec::new();
        walk(src, &mut files);
        let mut modules = BTreeSet::new();
        let mut by_module = BTreeMap::new();
        for file in files {
            let rel = file.strip_prefix(src).unwrap().with_extension("");
            let mut module: ModPath = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|l| l == "mod") {
                module.pop();
            }
            if module == ["lib"] || module == ["main"] {
                module.clear();
            }
            modules.insert(module.clone());
            by_module.entry(module).or_insert_with(Vec::new).push(file);
        }
        let mut sources = BTreeMap::new();
        for (module, files) in by_module {
            for file in files {
                let text = fs::read_to_string(&file).unwrap();
                let ast =
                    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let mut c = Collector::default();
                c.visit_file(&ast);
                let source: &mut Source = sources.entry(module.clone()).or_default();
                for (scope, public, name, written) in c.uses {
                    let base = [module.clone(), scope].concat();
                    let absolute = absolute(&modules, &base, &written, &BTreeMap::new());
                    if !public {
                        source.private_uses.extend(absolute.clone());
                    }
                    source.imports.insert(name, absolute);
                }
                source.paths.extend(c.paths);
                source.test_children.extend(c.test_children);
            }
        }
        let mut crate_ = Crate { sources };
        let tests: Vec<ModPath> = crate_
            .sources
            .iter()
            .flat_map(|(m, s)| {
                s.test_children.iter().map(move |c| {
                    let mut t = m.clone();
                    t.push(c.clone());
                    t
                })
            })
            .collect();
        crate_
            .sources
            .retain(|m, _| !tests.iter().any(|t| m.starts_with(t)));
        crate_
    }

    fn has_module(&self, m: &[String]) -> bool {
        m.is_empty() || self.sources.contains_key(m)
    }

    /// The file that defines what `abs` names (None: a module, or another crate).
    fn resolve(&self, abs: &[String], hops: usize) -> Option<ModPath> {
        let mut i = 0;
        while i < abs.len() && self.has_module(&abs[..=i]) {
            i += 1;
        }
        if i == 0 || i == abs.len() {
            return None;
        }
        let module = &abs[..i];
        match self.sources[module].imports.get(&abs[i]) {
            Some(Some(target)) if hops < 8 => {
                let mut next = target.clone();
                next.extend_from_slice(&abs[i + 1..]);
                self.resolve(&next, hops + 1)
            }
            Some(_) => None,
            None => Some(module.to_vec()),
        }
    }

    /// file -> files it uses.
    fn edges(&self) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        let modules: BTreeSet<ModPath> = self.sources.keys().cloned().collect();
        let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for (module, source) in &self.sources {
            if module.is_empty() {
                continue;
            }
            let mut targets: Vec<ModPath> = source.private_uses.clone();
            for (scope, written) in &source.paths {
                let base = [module.clone(), scope.clone()].concat();
                targets.extend(absolute(&modules, &base, written, &source.imports));
            }
            // A glob import uses its module's file (what it names is not followed).
            let globs = source.imports.iter().filter(|(name, _)| *name == "*");
            let globs = globs.filter_map(|(_, target)| target.clone());
            let mut files: Vec<ModPath> = globs.filter(|m| self.sources.contains_key(m)).collect();
            files.extend(targets.iter().filter_map(|t| self.resolve(t, 0)));
            for file in files {
                {
                    if &file != module {
                        edges.entry(module.clone()).or_default().insert(file);
                    }
                }
            }
        }
        edges
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `written` (a path in `module`) as a path from the crate root; None when it starts
/// outside this crate.
fn absolute(
    modules: &BTreeSet<ModPath>,
    module: &[String],
    written: &[String],
    imports: &BTreeMap<String, Option<ModPath>>,
) -> Option<ModPath> {
    let (first, rest) = written.split_first()?;
    let mut base: ModPath = match first.as_str() {
        "crate" | "pptp_agent" => Vec::new(),
        "self" => module.to_vec(),
        "super" => {
            let supers = written.iter().take_while(|s| *s == "super").count();
            let mut b = module[..module.len().checked_sub(supers)?].to_vec();
            b.extend_from_slice(&written[supers..]);
            return Some(b);
        }
        _ => {
            let mut child = module.to_vec();
            child.push(first.clone());
            if modules.contains(&child) {
                child.extend_from_slice(rest);
                return Some(child);
            }
            let mut b = imports.get(first)?.clone()?;
            b.extend_from_slice(rest);
            return Some(b);
        }
    };
    base.extend_from_slice(rest);
    Some(base)
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Vec<BTreeSet<N>> {
    struct State<N> {
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        stack: Vec<N>,
        on_stack: BTreeSet<N>,
        found: Vec<BTreeSet<N>>,
    }
    fn connect<N: Ord + Clone>(v: &N, edges: &BTreeMap<N, BTreeSet<N>>, s: &mut State<N>) {
        let i = s.index.len();
        s.index.insert(v.clone(), i);
        s.low.insert(v.clone(), i);
        s.stack.push(v.clone());
        s.on_stack.insert(v.clone());
        for w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                connect(w, edges, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(&w);
                let done = &w == v;
                component.insert(w);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            connect(v, edges, &mut s);
        }
    }
    s.found
}

fn agent() -> Crate {
    Crate::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

fn show(m: &[String]) -> String {
    m.join("::")
}

/// The file graph with files grouped into nodes (top-level modules, the files of one
/// module), keeping the file edges behind each node edge for messages.
struct Collapsed {
    graph: BTreeMap<String, BTreeSet<String>>,
    why: BTreeMap<(String, String), Vec<String>>,
}

impl Collapsed {
    /// Groups by `node` (None: leave the file out).
    fn new(
        edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        node: impl Fn(&ModPath) -> Option<String>,
    ) -> Self {
        let mut c = Collapsed {
            graph: BTreeMap::new(),
            why: BTreeMap::new(),
        };
        for (from, tos) in edges {
            for to in tos {
                let (Some(a), Some(b)) = (node(from), node(to)) else {
                    continue;
                };
                if a != b {
                    c.graph.entry(a.clone()).or_default().insert(b.clone());
                    c.why.entry((a, b)).or_default().push(format!(
                        "{} -> {}",
                        show(from),
                        show(to)
                    ));
                }
            }
        }
        c
    }

    fn why(&self, a: &str, b: &str) -> String {
        self.why[&(a.to_owned(), b.to_owned())].join(", ")
    }

    /// A cycle and the edges that make it.
    fn describe(&self, component: &BTreeSet<String>) -> String {
        let mut out = format!("cycle between {component:?}:");
        for a in component {
            let inside = self.graph.get(a).into_iter().flatten();
            for b in inside.filter(|b| component.contains(*b)) {
                out += &format!("\n    {a} -> {b}: {}", self.why(a, b));
            }
        }
        out
    }
}

#[test]
fn top_level_modules_follow_the_layers() {
    let krate = agent();
    let edges = krate.edges();
    let rank = |m: &str| LAYERS.iter().position(|(_, ms)| ms.contains(&m));
    let unplaced: BTreeSet<&String> = krate
        .sources
        .keys()
        .filter_map(|m| m.first())
        .filter(|m| rank(m).is_none())
        .collect();
    assert!(unplaced.is_empty(), "put {unplaced:?} in a layer of LAYERS");
    let modules = Collapsed::new(&edges, |m| m.first().cloned());
    let mut upward = Vec::new();
    for (a, bs) in &modules.graph {
        for b in bs {
            if rank(b) > rank(a) {
                upward.push(format!(
                    "{a} ({}) uses {b} ({}): {}",
                    LAYERS[rank(a).unwrap()].0,
                    LAYERS[rank(b).unwrap()].0,
                    modules.why(a, b)
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layers:\n  {}",
        upward.join("\n  ")
    );
}

#[test]
fn no_cycle_between_top_level_modules() {
    let edges = agent().edges();
    let modules = Collapsed::new(&edges, |m| m.first().cloned());
    let found: Vec<String> = cycles(&modules.graph)
        .iter()
        .map(|c| modules.describe(c))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_cycle_between_files_of_a_module() {
    let krate = agent();
    let edges = krate.edges();
    let parents: BTreeSet<ModPath> = krate
        .sources
        .keys()
        .filter(|m| m.len() > 1)
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    let mut found = Vec::new();
    for parent in &parents {
        let files = Collapsed::new(&edges, |m| {
            if m == parent {
                Some("mod".into())
            } else if m.len() > parent.len() && m.starts_with(parent) {
                Some(m[parent.len()].clone())
            } else {
                None
            }
        });
        for c in cycles(&files.graph) {
            found.push(format!("in {}: {}", show(parent), files.describe(&c)));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The check sees what it must: a cycle planted in a small tree is found, a re-export
/// is followed to the defining file, and test code is left out.
#[test]
fn the_check_finds_a_planted_cycle() {
    let dir = std::env::temp_dir().join(format!("pptp-layers-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("a")).unwrap();
    fs::create_dir_all(dir.join("b")).unwrap();
    fs::write(dir.join("lib.rs"), "pub mod a; pub mod b;").unwrap();
    fs::write(dir.join("a/mod.rs"), "pub mod x; pub mod y; pub use x::X;").unwrap();
    fs::write(dir.join("a/x.rs"), "pub struct X(pub super::y::Y);").unwrap();
    fs::write(
        dir.join("a/y.rs"),
        "pub struct Y; fn f() { let _ = crate::a::x::X(Y); }",
    )
    .unwrap();
    fs::write(
        dir.join("b/mod.rs"),
        "use crate::a::X;\npub fn g(_: X) {}\n#[cfg(test)]\nmod tests { fn t() { let _ = crate::a::y::Y; } }",
    )
    .unwrap();
    let krate = Crate::read(&dir);
    let edges = krate.edges();
    fs::remove_dir_all(&dir).unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<ModPath>();
    assert_eq!(edges[&s(&["b"])], BTreeSet::from([s(&["a", "x"])]));
    let files = Collapsed::new(&edges, |m| (m.len() == 2).then(|| m[1].clone()));
    assert_eq!(
        cycles(&files.graph),
        vec![BTreeSet::from(["x".to_string(), "y".to_string()])]
    );
}
