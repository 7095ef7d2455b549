package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/acdtcm/acdtcm/internal/knowledge"
	"github.com/acdtcm/acdtcm/internal/severity"
)

func init() { register(newKnowledgeCmd) }

func newKnowledgeCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "knowledge",
		Short: "Inspect, check and customise the clinical knowledge base and TCM rule engine",
		Long: `The knowledge base holds the severity scales and their cross-walk, Western treatment
options by grade and lesion type (中国痤疮治疗指南 2019, AAD), TCM syndromes with treatment
principle and representative formula (names only, never doses), the nine constitutions,
referral triggers and disclaimers. Every entry cites its sources and a confidence tag
(V verified, S secondary, X synthesised).

A user file (--file of show and analyze; knowledge.show.file in a config file) is merged
over the built-in base:
entries with a built-in id replace it, new ids are added, "remove: {section: [ids]}" deletes
built-in entries, and engine keys override one by one. Start from "acdtcm knowledge dump".`,
		Example: `  acdtcm knowledge dump > my-knowledge.yaml
  acdtcm knowledge check my-knowledge.yaml
  acdtcm knowledge show --syndromes
  acdtcm knowledge analyze --grade 1 --scale hayashi --lesions papule=8,pustule=2 --gender female --age 29 --symptoms "经前加重，口干"`,
	}
	cmd.AddCommand(newKnowledgeCheckCmd(app), newKnowledgeShowCmd(app), newKnowledgeDumpCmd(app), newKnowledgeAnalyzeCmd(app))
	return cmd
}

// --- check ---

type knowledgeCheckOptions struct {
	Files []string
}

func newKnowledgeCheckCmd(app *App) *cobra.Command {
	opts := &knowledgeCheckOptions{}
	return &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate knowledge files (each merged over the built-in base)",
		Long: `check loads each file strictly (unknown fields and YAML errors are reported with their
line), merges it over the built-in base and runs the semantic checks: every entry has sources
from the registry and a confidence tag, every grade of every scale has recommendations, the
cross-walk agrees with internal/severity, referenced syndromes, treatments and constitutions
exist, formulas carry no dose text. It checks every file and exits 1 if any is invalid.`,
		Example: `  acdtcm knowledge check my-knowledge.yaml
  acdtcm knowledge check clinic-a.yaml clinic-b.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			return runKnowledgeCheck(cmd.Context(), app, opts)
		},
	}
}

func runKnowledgeCheck(_ context.Context, app *App, opts *knowledgeCheckOptions) error {
	bad := 0
	for _, f := range opts.Files {
		kb, err := knowledge.LoadFile(f)
		if err != nil {
			bad++
			fmt.Fprintf(app.Err, "%s: INVALID\n%v\n", f, err)
			continue
		}
		fmt.Fprintf(app.Out, "%s: ok (%d syndromes, %d rules, %d western entries, %d referral triggers, %d sources)\n",
			f, len(kb.Syndromes), len(kb.Rules), len(kb.Western), len(kb.Referrals), len(kb.Sources))
	}
	if bad > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d knowledge files invalid", bad, len(opts.Files))}
	}
	return nil
}

// --- dump ---

func newKnowledgeDumpCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "dump",
		Short: "Print the built-in knowledge base YAML (to copy and edit)",
		Example: `  acdtcm knowledge dump > my-knowledge.yaml
  acdtcm knowledge dump | grep -n "id: prior_"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := knowledge.Embedded()
			if err != nil {
				return err
			}
			_, err = app.Out.Write(data)
			return err
		},
	}
}

// --- show ---

type knowledgeShowOptions struct {
	File     string
	Sections []string
	Format   string
}

// knowledgeSections are the sections show can print, in order.
var knowledgeSections = []string{"scales", "western", "syndromes", "rules", "constitutions", "referrals", "disclaimers", "sources"}

func newKnowledgeShowCmd(app *App) *cobra.Command {
	opts := &knowledgeShowOptions{}
	flags := map[string]*bool{}
	cmd := &cobra.Command{
		Use:   "show [--scales|--western|--syndromes|--rules|--constitutions|--referrals|--disclaimers|--sources]",
		Short: "Print sections of the knowledge base (all sections when none is chosen)",
		Example: `  acdtcm knowledge show --syndromes
  acdtcm knowledge show --scales --referrals
  acdtcm knowledge show --rules --file my-knowledge.yaml
  acdtcm knowledge show --constitutions --format yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Sections = nil
			for _, s := range knowledgeSections {
				if *flags[s] {
					opts.Sections = append(opts.Sections, s)
				}
			}
			return runKnowledgeShow(cmd.Context(), app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.File, "file", "", "knowledge file merged over the built-in base")
	f.StringVar(&opts.Format, "format", "text", "output format: text or yaml")
	help := map[string]string{
		"scales":        "severity scales, grades, cross-walk and reference scales",
		"western":       "Western treatment options and cautions with their selectors",
		"syndromes":     "TCM syndromes: signs, tongue, pulse, principle, formula, external treatment",
		"rules":         "TCM engine rules and weights",
		"constitutions": "the nine constitution types",
		"referrals":     "referral (seek care) triggers",
		"disclaimers":   "disclaimers",
		"sources":       "the source registry",
	}
	for _, s := range knowledgeSections {
		flags[s] = f.Bool(s, false, help[s])
	}
	return cmd
}

func runKnowledgeShow(_ context.Context, app *App, opts *knowledgeShowOptions) error {
	kb, err := knowledge.Open(opts.File)
	if err != nil {
		return err
	}
	sections := opts.Sections
	if len(sections) == 0 {
		sections = knowledgeSections
	}
	switch opts.Format {
	case "yaml":
		return showYAML(app.Out, kb, sections)
	case "text":
	default:
		return fmt.Errorf("--format must be text or yaml, got %q", opts.Format)
	}
	w := app.Out
	fmt.Fprintf(w, "knowledge base: %s\n", strings.Join(kb.Files, " + "))
	for _, s := range sections {
		switch s {
		case "scales":
			showScales(w, kb)
		case "western":
			showWestern(w, kb)
		case "syndromes":
			showSyndromes(w, kb)
		case "rules":
			showRules(w, kb)
		case "constitutions":
			showConstitutions(w, kb)
		case "referrals":
			showReferrals(w, kb)
		case "disclaimers":
			showDisclaimers(w, kb)
		case "sources":
			showSources(w, kb)
		}
	}
	return nil
}

func showYAML(w io.Writer, kb *knowledge.KB, sections []string) error {
	out := map[string]any{}
	for _, s := range sections {
		switch s {
		case "scales":
			out["scales"], out["reference_scales"], out["lesion_types"] = kb.Scales, kb.ReferenceScales, kb.LesionTypes
		case "western":
			out["western"] = kb.Western
		case "syndromes":
			out["syndromes"], out["external_treatments"], out["lifestyle"] = kb.Syndromes, kb.External, kb.Lifestyle
		case "rules":
			out["rules"], out["engine"] = kb.Rules, kb.Engine
		case "constitutions":
			out["constitutions"] = kb.Constitutions
		case "referrals":
			out["referrals"] = kb.Referrals
		case "disclaimers":
			out["disclaimers"] = kb.Disclaimers
		case "sources":
			out["sources"] = kb.Sources
		}
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("encode yaml: %w", err)
	}
	return enc.Close()
}

func bi(t knowledge.Text) string {
	switch {
	case t.ZH == "":
		return t.EN
	case t.EN == "":
		return t.ZH
	}
	return t.ZH + " / " + t.EN
}

func cite(m knowledge.Meta) string {
	s := "[" + strings.Join(m.Sources, ",") + "; " + m.Confidence + "]"
	if m.Note != "" {
		s += " note: " + m.Note
	}
	return s
}

func heading(w io.Writer, title string) { fmt.Fprintf(w, "\n== %s ==\n", title) }

func showScales(w io.Writer, kb *knowledge.KB) {
	heading(w, "Severity scales 严重程度分级")
	for _, s := range kb.Scales {
		fmt.Fprintf(w, "%s: %s %s\n  %s\n", s.ID, bi(s.Name), cite(s.Meta), bi(s.Description))
		for _, g := range s.Grades {
			var cw []string
			for _, k := range []severity.Scale{severity.Hayashi, severity.Clinical4, severity.CN2019} {
				if v, ok := g.Crosswalk[string(k)]; ok {
					cw = append(cw, string(k)+"="+v)
				}
			}
			fmt.Fprintf(w, "  %-3s %s: %s (cross-walk %s) %s\n", g.Grade, bi(g.Label), bi(g.Criterion), strings.Join(cw, " "), cite(g.Meta))
		}
	}
	for _, r := range kb.ReferenceScales {
		fmt.Fprintf(w, "%s (reference only): %s %s\n  %s\n", r.ID, bi(r.Name), cite(r.Meta), bi(r.Description))
		if r.Caveat != nil {
			fmt.Fprintf(w, "  caveat: %s\n", bi(*r.Caveat))
		}
		for _, b := range r.Bands {
			fmt.Fprintf(w, "  %-6s %s %s\n", b.Range, bi(b.Label), cite(b.Meta))
		}
	}
	fmt.Fprintln(w, "lesion types:")
	for _, l := range kb.LesionTypes {
		forced := ""
		if l.Clinical4 != "" {
			forced = ", forces clinical4 " + l.Clinical4
		}
		fmt.Fprintf(w, "  %-9s %s: defines cn2019 %s%s %s\n", l.ID, bi(l.Name), l.CN2019, forced, cite(l.Meta))
	}
}

func showWestern(w io.Writer, kb *knowledge.KB) {
	heading(w, "Western treatment 西医治疗")
	for _, x := range kb.Western {
		var sel []string
		if x.Scale != "" {
			sel = append(sel, x.Scale+" "+strings.Join(x.Grades, ","))
		}
		if x.Lesion != "" {
			sel = append(sel, "lesion "+x.Lesion)
		}
		if x.When != nil {
			sel = append(sel, "when "+condText(*x.When))
		}
		if len(sel) == 0 {
			sel = append(sel, "always")
		}
		fmt.Fprintf(w, "%s [%s/%s] (%s)\n  %s\n  %s\n  %s\n", x.ID, x.Guideline, x.Category, strings.Join(sel, "; "), x.ZH, x.EN, cite(x.Meta))
	}
}

func showSyndromes(w io.Writer, kb *knowledge.KB) {
	heading(w, "TCM syndromes 中医证型 (formulas are textbook references without doses)")
	ext := map[string]knowledge.Item{}
	for _, it := range kb.External {
		ext[it.ID] = it
	}
	for _, s := range kb.Syndromes {
		fmt.Fprintf(w, "%s %s (%s) [%s] %s\n", s.Name.ZH, s.Name.EN, s.Pinyin, s.ID, cite(s.Meta))
		if len(s.Aliases) > 0 {
			fmt.Fprintf(w, "  aliases 别名: %s\n", strings.Join(s.Aliases, ", "))
		}
		fmt.Fprintf(w, "  皮损 lesions: %s\n  兼症 signs: %s\n  舌 tongue: %s\n  脉 pulse: %s\n  治法 principle: %s\n  代表方 formula: %s\n",
			bi(s.Lesions), bi(s.Signs), bi(s.Tongue), bi(s.Pulse), bi(s.Principle), bi(s.Formula))
		for _, m := range s.Modifications {
			fmt.Fprintf(w, "  加减 modification: %s\n", bi(m))
		}
		for _, id := range s.External {
			fmt.Fprintf(w, "  外治 external: %s\n", bi(ext[id].Name))
		}
		fmt.Fprintf(w, "  调摄 lifestyle: %s\n", strings.Join(s.Lifestyle, ", "))
	}
	fmt.Fprintln(w, "external treatments 外治:")
	for _, it := range kb.External {
		fmt.Fprintf(w, "  %s: %s %s\n", it.ID, bi(it.Text), cite(it.Meta))
	}
	fmt.Fprintln(w, "lifestyle 调摄:")
	for _, it := range kb.Lifestyle {
		fmt.Fprintf(w, "  %s: %s %s\n", it.ID, bi(it.Text), cite(it.Meta))
	}
}

func condText(c knowledge.Cond) string {
	var p []string
	if len(c.Keywords) > 0 {
		p = append(p, "keywords any of ["+strings.Join(c.Keywords, ", ")+"]")
	}
	if len(c.AndKeywords) > 0 {
		p = append(p, "and any of ["+strings.Join(c.AndKeywords, ", ")+"]")
	}
	if c.Gender != "" {
		p = append(p, "gender "+c.Gender)
	}
	if c.MinAge != nil {
		p = append(p, "age ≥ "+strconv.Itoa(*c.MinAge))
	}
	if c.MaxAge != nil {
		p = append(p, "age ≤ "+strconv.Itoa(*c.MaxAge))
	}
	for _, m := range []struct {
		name string
		op   string
		v    map[string]float64
	}{{"", "≥", c.LesionMin}, {"", "≤", c.LesionMax}, {" share", "≥", c.LesionShareMin}} {
		keys := make([]string, 0, len(m.v))
		for k := range m.v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p = append(p, fmt.Sprintf("%s%s %s %g", k, m.name, m.op, m.v[k]))
		}
	}
	if c.GradeMin != nil {
		p = append(p, c.GradeMin.Scale+" grade ≥ "+c.GradeMin.Grade)
	}
	if len(c.Constitution) > 0 {
		p = append(p, "constitution in ["+strings.Join(c.Constitution, ", ")+"]")
	}
	if c.MaxProbabilityBelow != nil {
		p = append(p, fmt.Sprintf("max probability < %g", *c.MaxProbabilityBelow))
	}
	if len(p) == 0 {
		return "always"
	}
	return strings.Join(p, " and ")
}

func showRules(w io.Writer, kb *knowledge.KB) {
	heading(w, "TCM rule engine 辨证规则")
	fmt.Fprintf(w, "engine: secondary_ratio %g, weak_evidence_below %g, lesion_present_min %g\n",
		kb.Engine.SecondaryRatio, kb.Engine.WeakEvidenceBelow, kb.Engine.LesionPresentMin)
	for _, r := range kb.Rules {
		prior := ""
		if r.Prior {
			prior = " (prior)"
		}
		fmt.Fprintf(w, "%s → %s %+g%s when %s %s\n", r.ID, r.Syndrome, r.Weight, prior, condText(r.When), cite(r.Meta))
	}
}

func showConstitutions(w io.Writer, kb *knowledge.KB) {
	heading(w, "Constitutions 中医体质 (王琦, ZYYXH/T157-2009)")
	for _, k := range kb.Constitutions {
		fmt.Fprintf(w, "%s %s %s (%s) [%s] acne relevance %s %s\n  %s\n  %s\n  %s\n", k.Code, k.Name.ZH, k.Name.EN, k.Pinyin, k.ID,
			k.Relevance, cite(k.Meta), bi(k.Features), bi(k.TonguePulse), bi(k.AcneRelevance))
	}
}

func showReferrals(w io.Writer, kb *knowledge.KB) {
	heading(w, "Referral triggers 转诊指征")
	for _, r := range kb.Referrals {
		urgent := ""
		if r.Urgent {
			urgent = " URGENT 紧急"
		}
		var conds []string
		for _, c := range r.WhenAny {
			conds = append(conds, condText(c))
		}
		fmt.Fprintf(w, "%s%s %s\n  when: %s\n  %s\n  %s\n", r.ID, urgent, cite(r.Meta), strings.Join(conds, "  OR  "), r.ZH, r.EN)
	}
}

func showDisclaimers(w io.Writer, kb *knowledge.KB) {
	heading(w, "Disclaimers 免责声明")
	for _, d := range kb.Disclaimers {
		in := ""
		if d.InResult {
			in = " (in every result)"
		}
		fmt.Fprintf(w, "%s%s %s\n  %s\n  %s\n", d.ID, in, cite(d.Meta), d.ZH, d.EN)
	}
}

func showSources(w io.Writer, kb *knowledge.KB) {
	heading(w, "Sources 来源")
	ids := make([]string, 0, len(kb.Sources))
	for id := range kb.Sources {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		na, ea := strconv.Atoi(strings.TrimPrefix(a, "S"))
		nb, eb := strconv.Atoi(strings.TrimPrefix(b, "S"))
		if ea == nil && eb == nil {
			return na - nb
		}
		return strings.Compare(a, b)
	})
	for _, id := range ids {
		s := kb.Sources[id]
		fmt.Fprintf(w, "%s: %s\n  %s\n", id, s.Title, s.URL)
	}
}

// --- analyze ---

type knowledgeAnalyzeOptions struct {
	File         string
	Grade        string
	Scale        string
	Probs        []float64
	Lesions      map[string]string
	Age          int
	Gender       string
	Symptoms     string
	Constitution string
	JSON         bool
}

func newKnowledgeAnalyzeCmd(app *App) *cobra.Command {
	opts := &knowledgeAnalyzeOptions{}
	cmd := &cobra.Command{
		Use:   "analyze [--grade G --scale S] [--lesions TYPE=N,...] [--symptoms TEXT]",
		Short: "Run the rule engine on a grade, lesion counts and symptoms, and explain the result",
		Long: `analyze runs the same engine "diagnose" uses on values you give: it prints the
effective grades, Western recommendations, every syndrome's score with the rules that fired,
the suggested syndrome(s) with treatment principle and reference formula (no doses), referral
flags and the disclaimer. Symptoms may be Chinese and/or English (口干 便秘 油腻 经前加重,
itching, greasy, constipation, premenstrual); negated mentions ("no itching", "无口干") are
ignored.`,
		Example: `  acdtcm knowledge analyze --grade 1 --scale hayashi --lesions papule=8,pustule=2 --gender female --age 29 --symptoms "经前加重，口干，月经不调"
  acdtcm knowledge analyze --grade IV --scale cn2019 --lesions nodule=3 --symptoms "dark red cysts, scarring" --json
  acdtcm knowledge analyze --symptoms "面部油腻 口臭 便秘 苔黄腻" --constitution 湿热质`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKnowledgeAnalyze(cmd.Context(), app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.File, "file", "", "knowledge file merged over the built-in base")
	f.StringVar(&opts.Grade, "grade", "", "predicted grade (a number, or I-IV on cn2019)")
	f.StringVar(&opts.Scale, "scale", "hayashi", "scale of --grade: hayashi, clinical4 or cn2019")
	f.Float64SliceVar(&opts.Probs, "probs", nil, "grade probabilities in grade order, e.g. 0.1,0.7,0.15,0.05")
	f.StringToStringVar(&opts.Lesions, "lesions", nil, "lesion counts by type: comedone, papule, pustule, nodule, or lesion for untyped ones (e.g. papule=8,nodule=1)")
	f.IntVar(&opts.Age, "age", -1, "patient age in years")
	f.StringVar(&opts.Gender, "gender", "", "patient gender: female or male")
	f.StringVar(&opts.Symptoms, "symptoms", "", "free-text symptoms, Chinese and/or English")
	f.StringVar(&opts.Constitution, "constitution", "", "constitution from the questionnaire: id (damp_heat), code (F) or name (湿热质)")
	f.BoolVar(&opts.JSON, "json", false, "print the full analysis as JSON")
	return cmd
}

func runKnowledgeAnalyze(_ context.Context, app *App, opts *knowledgeAnalyzeOptions) error {
	kb, err := knowledge.Open(opts.File)
	if err != nil {
		return err
	}
	in := knowledge.Input{Probabilities: opts.Probs, Gender: opts.Gender, Symptoms: opts.Symptoms, Constitution: opts.Constitution}
	if opts.Grade != "" {
		s, err := severity.ParseScale(opts.Scale)
		if err != nil {
			return fmt.Errorf("--scale: %w", err)
		}
		g, err := s.ParseGrade(opts.Grade)
		if err != nil {
			return fmt.Errorf("--grade: %w", err)
		}
		in.Grade = severity.Grade{Value: g, Scale: s}
	}
	if len(opts.Lesions) > 0 {
		in.Lesions = map[string]float64{}
		for k, v := range opts.Lesions {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("--lesions %s=%s: not a number", k, v)
			}
			in.Lesions[k] = n
		}
	}
	if opts.Age >= 0 {
		age := opts.Age
		in.Age = &age
	}
	a := kb.Analyze(in)
	if opts.JSON {
		enc := json.NewEncoder(app.Out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(a)
	}
	printAnalysis(app.Out, a)
	return nil
}

func printAnalysis(w io.Writer, a knowledge.Analysis) {
	if a.Grade != nil {
		fmt.Fprintf(w, "Grade 分级: %s %s (%s)\n", a.Grade.Scale, a.Grade.Scale.Format(a.Grade.Value), bi(*a.Label))
	}
	for _, e := range a.Effective {
		reason := ""
		if e.Reason != "" {
			reason = " — " + e.Reason
		}
		fmt.Fprintf(w, "  %s %s %s%s\n", e.Scale, e.Grade, bi(e.Label), reason)
	}
	fmt.Fprintln(w, "\nWestern options 西医方案:")
	for _, r := range a.Recommendations {
		fmt.Fprintf(w, "  [%s/%s] %s\n      %s  [%s; %s] (%s)\n", r.Guideline, r.Category, r.ZH, r.EN, r.Source, r.Confidence, r.Why)
	}
	fmt.Fprintln(w, "\nTCM syndrome scores 证型评分:")
	for _, s := range a.Scores {
		fmt.Fprintf(w, "  %-28s %5.2f\n", s.Syndrome, s.Score)
		for _, r := range s.Reasons {
			fmt.Fprintf(w, "      %s\n", r)
		}
	}
	if s := a.Syndrome; s != nil {
		fmt.Fprintf(w, "\nSuggested syndrome 参考证型: %s (score %.2f) [%s; %s]\n", bi(s.Name), s.Score, strings.Join(s.Sources, ","), s.Confidence)
		for _, x := range a.Secondary {
			fmt.Fprintf(w, "  co-existing 兼夹: %s (score %.2f)\n", bi(x.Name), x.Score)
		}
		fmt.Fprintf(w, "  治法 principle: %s\n  代表方 formula: %s\n      (%s)\n  舌 tongue to confirm: %s\n  脉 pulse to confirm: %s\n",
			bi(s.Principle), bi(s.Formula), bi(knowledge.FormulaLabel), bi(s.Tongue), bi(s.Pulse))
		for _, x := range s.External {
			fmt.Fprintf(w, "  外治 external: %s\n", bi(x))
		}
		for _, x := range s.Lifestyle {
			fmt.Fprintf(w, "  调摄 lifestyle: %s\n", bi(x))
		}
	}
	if c := a.Constitution; c != nil {
		fmt.Fprintf(w, "\nConstitution 体质: %s %s — %s\n", c.Code, bi(c.Name), bi(c.AcneRelevance))
	}
	if len(a.Referrals) > 0 {
		fmt.Fprintln(w, "\nReferral 转诊提示:")
		for _, r := range a.Referrals {
			urgent := ""
			if r.Urgent {
				urgent = "URGENT 紧急 "
			}
			fmt.Fprintf(w, "  %s%s: %s\n      %s  [%s; %s] (%s)\n", urgent, r.Code, r.ZH, r.EN, r.Source, r.Confidence, strings.Join(r.Why, ", "))
		}
	}
	for _, n := range a.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", n)
	}
	fmt.Fprintln(w, "\nDisclaimer 免责声明:")
	for _, d := range a.Disclaimers {
		fmt.Fprintf(w, "  %s\n  %s\n", d.ZH, d.EN)
	}
}
