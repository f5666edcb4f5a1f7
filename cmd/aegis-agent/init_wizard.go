package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/huh"
	"github.com/charmbracelet/lipgloss"
	"github.com/spf13/cobra"

	v1 "github.com/aegis-backup/aegis/api/v1"
	"github.com/aegis-backup/aegis/cmd/aegis-agent/internal/setup"
)

// wizard is the interactive side of init: one short form per screen, each
// answer checked as it is given, all of it filling one Answers that
// Prepare renders exactly as --non-interactive does.
type wizard struct {
	ctx  context.Context
	out  io.Writer
	g    *globals
	f    *initFlags
	dirs setup.Dirs
	a    *setup.Answers
	// file is the manifest file of the setup being edited, or "".
	file string
	// others are the policies of the config directory init is not editing.
	others []string
	// in is standard input in --accessible mode, nil otherwise.
	in *lineReader
	// secrets are the inputs whose answer is not shown.
	secrets map[*huh.Input]bool
	// removeIdentity is set when the user asked to remove the age
	// identity from this host once the setup is written.
	removeIdentity bool
	// hidden holds the hide conditions of groups (see hideIf).
	hidden map[*huh.Group]func() bool
}

var (
	okStyle   = lipgloss.NewStyle().Foreground(lipgloss.Color("2")).Bold(true)
	badStyle  = lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true)
	headStyle = lipgloss.NewStyle().Bold(true)
	dimStyle  = lipgloss.NewStyle().Faint(true)
)

// errCancelled ends the wizard when the user leaves it.
var errCancelled = errors.New("setup cancelled: nothing was written")

func runWizard(ctx context.Context, cmd *cobra.Command, g *globals, f *initFlags, dirs setup.Dirs) error {
	w := &wizard{ctx: ctx, out: cmd.OutOrStdout(), g: g, f: f, dirs: dirs, secrets: map[*huh.Input]bool{}}
	if f.accessible {
		w.in = newLineReader(ctx, os.Stdin)
		defer watchInterrupt(ctx, w.out)()
	}
	err := w.run()
	if errors.Is(err, errInputEnded) {
		fmt.Fprintln(w.out, "\n"+errInputEnded.Error()+": nothing was written.")
		return silentExit(exitInvalid)
	}
	if errors.Is(err, huh.ErrUserAborted) || errors.Is(err, errCancelled) || errors.Is(err, context.Canceled) {
		fmt.Fprintln(w.out, "\n"+errCancelled.Error()+".")
		return silentExit(exitFailed)
	}
	return err
}

// hideIf hides a group when hide says so. huh's --accessible mode asks
// every group, hidden or not, so form runs the groups one by one there and
// skips the hidden ones itself.
func (w *wizard) hideIf(g *huh.Group, hide func() bool) *huh.Group {
	if w.hidden == nil {
		w.hidden = map[*huh.Group]func() bool{}
	}
	w.hidden[g] = hide
	return g.WithHideFunc(hide)
}

var errInputEnded = errors.New("standard input ended before the setup was complete")

// errBack is returned by a form left with Esc (or Shift+Tab on its first
// field): the user wants the previous screen.
var errBack = errors.New("back to the previous screen")

// group makes a screen of fields. In --accessible mode each field runs
// through accessibleField.
func (w *wizard) group(fields ...huh.Field) *huh.Group {
	if w.in != nil {
		for i, f := range fields {
			fields[i] = accessibleField{Field: f, in: w.in, secrets: w.secrets}
		}
	}
	return huh.NewGroup(fields...)
}

func (w *wizard) form(groups ...*huh.Group) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.in != nil && len(groups) > 1 {
		for _, g := range groups {
			if hide := w.hidden[g]; hide != nil && hide() {
				continue
			}
			if err := w.form(g); err != nil {
				return err
			}
		}
		return nil
	}
	f := huh.NewForm(groups...).WithShowHelp(true).WithOutput(w.out)
	if w.in == nil {
		return runBackable(w.ctx, f, w.out)
	}
	err := f.WithAccessible(true).WithInput(w.in).RunWithContext(w.ctx)
	if s := w.in.stopped(); s != nil {
		return s
	}
	return err
}

// backable runs a form as huh does, and also leaves it when the user
// asks for the previous screen.
type backable struct {
	form  *huh.Form
	first huh.Field // the field that had the focus first
	back  bool
}

func (m *backable) Init() tea.Cmd { return m.form.Init() }

func (m *backable) View() string {
	if m.back {
		return ""
	}
	return m.form.View()
}

func (m *backable) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if k, ok := msg.(tea.KeyMsg); ok {
		if m.first == nil {
			m.first = m.form.GetFocusedField()
		}
		// Esc in a list being filtered ends the filter, as huh has it.
		sel, filtering := m.form.GetFocusedField().(*huh.Select[string])
		filtering = filtering && sel.GetFiltering()
		if k.String() == "esc" && !filtering || k.String() == "shift+tab" && m.form.GetFocusedField() == m.first {
			m.back = true
			return m, tea.Quit
		}
	}
	f, cmd := m.form.Update(msg)
	if f, ok := f.(*huh.Form); ok {
		m.form = f
	}
	return m, cmd
}

// runBackable runs f on the terminal; it returns errBack when the user
// went back, huh.ErrUserAborted on Ctrl+C.
func runBackable(ctx context.Context, f *huh.Form, out io.Writer) error {
	f.SubmitCmd, f.CancelCmd = tea.Quit, tea.Interrupt
	m := &backable{form: f}
	_, err := tea.NewProgram(m, tea.WithContext(ctx), tea.WithOutput(out)).Run()
	switch {
	case m.back:
		return errBack
	case f.State == huh.StateAborted || errors.Is(err, tea.ErrInterrupted):
		return huh.ErrUserAborted
	case errors.Is(err, tea.ErrProgramKilled):
		return context.Canceled
	case err != nil:
		return fmt.Errorf("run the form: %w", err)
	}
	return nil
}

// section is one part of the setup; run asks its screens.
type section struct {
	name string
	run  func() error
}

func (w *wizard) sections() []section {
	return []section{
		{"the policy name", w.welcome},
		{"the destinations", w.destinations},
		{"the sources", w.sources},
		{"the encryption", w.encryption},
		{"the schedule and retention", w.schedule},
		{"the notifications", w.notifications},
	}
}

// run asks the sections in order; Esc goes back one section. Once the
// review was shown, a section picked there leads back to the review.
func (w *wizard) run() error {
	if err := w.pickSetup(); err != nil {
		return err
	}
	secs := w.sections()
	i, reviewed := 0, false
	for {
		if i < len(secs) {
			switch err := secs[i].run(); {
			case errors.Is(err, errBack):
				i = max(i-1, 0)
			case err != nil:
				return err
			case reviewed:
				i = len(secs)
			default:
				i++
			}
			continue
		}
		plan, action, err := w.review(secs)
		switch {
		case errors.Is(err, errBack):
			i = len(secs) - 1
			continue
		case err != nil:
			return err
		case action == "quit":
			return errCancelled
		case action == "write":
			return w.write(plan)
		}
		reviewed = true
		i, _ = strconv.Atoi(action)
	}
}

// pickSetup finds what to edit: the policy of --policy, the only one
// there is, or the one the user picks.
func (w *wizard) pickSetup() error {
	existing, names, err := setup.LoadExisting(w.dirs, w.f.policy)
	if err != nil {
		return invalid(err)
	}
	if existing == nil && w.f.policy == "" && len(names) > 1 {
		// The one edited last comes first and is proposed.
		choice := setup.OrDefault(setup.LastEdited(w.dirs), names[0])
		opts := []huh.Option[string]{huh.NewOption("Edit policy "+choice+" (edited last)", choice)}
		for _, n := range names {
			if n != choice {
				opts = append(opts, huh.NewOption("Edit policy "+n, n))
			}
		}
		opts = append(opts, huh.NewOption("Set up a new policy", ""))
		err := errBack // there is no screen before this one
		for errors.Is(err, errBack) {
			err = w.form(w.group(huh.NewSelect[string]().
				Title("This host has several backup policies").
				Description("Pick the one to edit; a new one goes into a file of its own.").
				Value(&choice).Options(opts...)))
		}
		if err != nil {
			return err
		}
		if choice != "" {
			if existing, _, err = setup.LoadExisting(w.dirs, choice); err != nil {
				return invalid(err)
			}
		}
	}
	w.a = setup.NewAnswers()
	if w.f.policy != "" {
		w.a.Policy = w.f.policy
	}
	if existing != nil {
		w.a, w.file = existing.Answers, existing.File
	}
	for _, n := range names {
		if n != w.a.Policy || existing == nil {
			w.others = append(w.others, n)
		}
	}
	return nil
}

func (w *wizard) welcome() error {
	intro := fmt.Sprintf(`This sets up scheduled, encrypted backups of this server, one step at a
time: where backups go, what to back up, encryption, schedule and
retention, and notifications. Each answer is checked as you give it.

  manifests  %s
  keys       %s
  secrets    %s  (mode 0600)

Nothing is written until you confirm at the end, where any part can be
changed again. %s`,
		w.dirs.Config, w.dirs.Keys, w.dirs.Secrets,
		map[bool]string{true: "Ctrl+C or Ctrl+D leaves at any time.", false: "Esc goes back a screen; Ctrl+C leaves at any time."}[w.in != nil])
	if w.file != "" {
		intro += fmt.Sprintf("\n\nEditing policy %s from %s: its current values are the\ndefaults, so Enter keeps what is there.", w.a.Policy, w.file)
	}
	name := w.a.Policy
	err := w.form(w.group(
		huh.NewNote().Title("Aegis guided setup").Description(intro),
		huh.NewInput().Title("Name of this backup policy").
			Description("Lower-case letters, digits and '-'. The manifest file is NAME.yaml.").
			Value(&name).Validate(orCurrent(&name, func(s string) error {
			if err := setup.CheckName(s); err != nil {
				return err
			}
			if slices.Contains(w.others, s) {
				return fmt.Errorf("a policy named %s already exists: run aegis-agent init --policy %s to edit it, or pick another name", s, s)
			}
			return nil
		})),
	))
	w.a.Policy = name
	if err == nil {
		w.done("policy " + name)
	}
	return err
}

// done prints what a screen settled, so the answers stay on the terminal
// after their form is gone.
func (w *wizard) done(what string) {
	fmt.Fprintln(w.out, okStyle.Render("✓")+" "+what)
}

// Destination kinds as the wizard offers them.
var destKinds = []struct{ label, value string }{
	{"Local directory (a disk or a mounted share)", "local"},
	{"Amazon S3", "s3:aws"},
	{"Backblaze B2", "s3:b2"},
	{"Google Cloud Storage (S3-interoperable, HMAC keys)", "s3:gcs"},
	{"Wasabi", "s3:wasabi"},
	{"DigitalOcean Spaces", "s3:digitalocean"},
	{"MinIO", "s3:minio"},
	{"Other S3-compatible service", "s3:other"},
	{"SFTP server", "sftp"},
	{"FTP or FTPS server", "ftp"},
}

// defaultRegion is the region proposed for a provider.
func defaultRegion(provider string) string {
	switch provider {
	case "aws", "wasabi":
		return "us-east-1"
	case "b2":
		return "us-west-004"
	case "digitalocean":
		return "nyc3"
	}
	return ""
}

func destKindOf(d setup.DestinationAnswer) string {
	switch {
	case d.Local != nil:
		return "local"
	case d.S3 != nil:
		return "s3:" + d.S3.Provider
	case d.SFTP != nil:
		return "sftp"
	case d.FTP != nil:
		return "ftp"
	}
	return "local"
}

func (w *wizard) destinations() error {
	// Each is edited in place, so that the name checks know which one
	// they look at.
	for i := 0; i < len(w.a.Destinations); {
		remove, err := w.destination(&w.a.Destinations[i], true, i+1)
		if err != nil {
			return err
		}
		if remove {
			w.a.Destinations = slices.Delete(w.a.Destinations, i, i+1)
			continue
		}
		i++
	}
	for {
		if len(w.a.Destinations)+len(w.a.OtherDestinations) > 0 {
			more, err := w.confirm("Add another destination?",
				"A second copy elsewhere (say a local disk plus a cloud bucket) survives the loss of either.", false)
			if err != nil || !more {
				return err
			}
		}
		w.a.Destinations = append(w.a.Destinations, setup.DestinationAnswer{})
		n := len(w.a.Destinations)
		if _, err := w.destination(&w.a.Destinations[n-1], false, n); err != nil {
			// Going back from a new one drops it.
			w.a.Destinations = w.a.Destinations[:n-1]
			if !errors.Is(err, errBack) || n == 1 && len(w.a.OtherDestinations) == 0 {
				return err
			}
		}
	}
}

// confirm asks a yes/no question.
func (w *wizard) confirm(title, desc string, def bool) (bool, error) {
	v := def
	err := w.form(w.group(huh.NewConfirm().Title(title).Description(desc).Value(&v)))
	return v, err
}

// destination asks for one destination; it reports whether the user asked
// to remove it.
func (w *wizard) destination(d *setup.DestinationAnswer, existing bool, n int) (bool, error) {
	for {
		remove, err := w.destinationOnce(d, existing, n)
		if !errors.Is(err, errAgain) {
			return remove, err
		}
	}
}

// errAgain asks a screen's first question again: the user went back from
// the questions after it.
var errAgain = errors.New("ask again")

func (w *wizard) destinationOnce(d *setup.DestinationAnswer, existing bool, n int) (bool, error) {
	kind := destKindOf(*d)
	opts := []huh.Option[string]{}
	for _, k := range destKinds {
		opts = append(opts, huh.NewOption(k.label, k.value))
	}
	title := fmt.Sprintf("Destination %d: where should backups go?", n)
	if existing {
		title = fmt.Sprintf("Destination %d: %s (%s)", n, d.Name, setup.DescribeDestination(*d))
		opts = append(opts, huh.NewOption("Remove this destination", "remove"))
	}
	if err := w.form(w.group(huh.NewSelect[string]().Value(&kind).Title(title).
		Description("Snapshots are stored per host, so several servers can share one destination.").
		Options(opts...))); err != nil {
		return false, err
	}
	if kind == "remove" {
		return true, nil
	}
	if kind != destKindOf(*d) || d.DestinationSpec.Driver() == "" {
		w.newDestKind(d, kind)
	}
	problem := ""
	for {
		var err error
		switch {
		case d.Local != nil:
			err = w.localForm(d, problem)
		case d.S3 != nil:
			err = w.s3Form(d, problem)
		case d.SFTP != nil:
			err = w.sftpForm(d, problem)
		case d.FTP != nil:
			err = w.ftpForm(d, problem)
		}
		if errors.Is(err, errBack) {
			return false, errAgain
		}
		if err != nil {
			return false, err
		}
		if w.f.skipChecks || d.Local != nil {
			w.done(fmt.Sprintf("destination %s: %s", d.Name, setup.DescribeDestination(*d)))
			return false, nil
		}
		fmt.Fprintf(w.out, "Checking %s ...\n", setup.DescribeDestination(*d))
		res := setup.CheckDestinationLive(w.ctx, *d)
		if w.report(res) {
			w.done(fmt.Sprintf("destination %s: %s", d.Name, setup.DescribeDestination(*d)))
			return false, nil
		}
		problem = fmt.Sprintf("%s did not work: %v\nCorrect the answers below.", setup.DescribeDestination(*d), res.Err)
	}
}

// newDestKind makes d a destination of kind with that kind's defaults,
// under the same name.
func (w *wizard) newDestKind(d *setup.DestinationAnswer, kind string) {
	name := d.Name
	*d = setup.DestinationAnswer{Name: name}
	switch {
	case kind == "local":
		d.Local = &v1.LocalDestination{Path: setup.DefaultLocalPath}
	case strings.HasPrefix(kind, "s3:"):
		p := strings.TrimPrefix(kind, "s3:")
		d.S3 = &v1.S3Destination{Provider: p, Region: defaultRegion(p)}
	case kind == "sftp":
		d.SFTP = &v1.SFTPDestination{Port: 22, User: "backup", Path: "/backups", KnownHostsFile: "/root/.ssh/known_hosts"}
		if _, err := os.Stat("/root/.ssh/id_ed25519"); err == nil {
			d.SFTP.PrivateKeyFile = "/root/.ssh/id_ed25519"
		}
	case kind == "ftp":
		d.FTP = &v1.FTPDestination{Port: 21, User: "backup", Path: "/backups", TLS: "explicit"}
	}
	if d.Name == "" {
		d.Name = w.uniqueDestName(setup.DefaultDestName(strings.Split(kind, ":")[0], strings.TrimPrefix(kind, "s3:")))
	}
}

// report prints the outcome of a live check and says whether to go on.
func (w *wizard) report(r setup.LiveResult) bool {
	switch {
	case !r.Checked:
		fmt.Fprintln(w.out, dimStyle.Render("· "+r.What+": not checked (this build of aegis-agent cannot connect to it yet); each answer's format was checked"))
		return true
	case r.Err != nil:
		fmt.Fprintln(w.out, badStyle.Render("✗ "+r.What+": "+r.Err.Error()))
		return false
	}
	fmt.Fprintln(w.out, okStyle.Render("✓ "+r.What+": reachable with these credentials"))
	return true
}

func (w *wizard) uniqueDestName(base string) string {
	name := base
	for i := 2; ; i++ {
		taken := false
		for _, d := range w.a.Destinations {
			if d.Name == name {
				taken = true
			}
		}
		if !taken {
			return name
		}
		name = fmt.Sprintf("%s-%d", base, i)
	}
}

// nameInput asks for an object's name, unique among its siblings.
func nameInput(title string, v *string, taken func(string) bool) *huh.Input {
	return huh.NewInput().Title(title).Value(v).Validate(orCurrent(v, func(s string) error {
		if err := setup.CheckName(s); err != nil {
			return err
		}
		if taken(s) {
			return fmt.Errorf("%s is already used by another one: pick another name", s)
		}
		return nil
	}))
}

func (w *wizard) destNameTaken(self *setup.DestinationAnswer) func(string) bool {
	return func(s string) bool {
		for i := range w.a.Destinations {
			if &w.a.Destinations[i] != self && w.a.Destinations[i].Name == s {
				return true
			}
		}
		return slices.Contains(w.a.OtherDestinations, s)
	}
}

// problemNote shows why the last answers failed, above the fields.
func problemNote(problem string) []huh.Field {
	if problem == "" {
		return nil
	}
	return []huh.Field{huh.NewNote().Title("That did not work").Description(problem)}
}

func (w *wizard) localForm(d *setup.DestinationAnswer, problem string) error {
	fields := append(problemNote(problem),
		nameInput("Name of this destination", &d.Name, w.destNameTaken(d)),
		huh.NewInput().Title("Directory for the backups").
			Description("Created when missing. Best on another disk than the data it protects.").
			Value(&d.Local.Path).Validate(orCurrent(&d.Local.Path, setup.CheckLocalTarget)),
	)
	return w.form(w.group(fields...))
}

// secretInput asks for a secret; stored says where the current one is,
// which an empty answer keeps.
func (w *wizard) secretInput(title, stored string, v *string) *huh.Input {
	desc := "Typed text is not shown. It is stored in its own file of mode 0600, never in the manifest."
	if stored != "" {
		desc = "Leave empty to keep the one stored in " + stored + "."
	}
	in := huh.NewInput().Title(title).Description(desc).EchoMode(huh.EchoModePassword).Value(v)
	w.secrets[in] = true
	return in
}

func (w *wizard) s3Form(d *setup.DestinationAnswer, problem string) error {
	s := d.S3
	// What was typed before a failed check is proposed again.
	keyID, secret := typedValue(d.AccessKeyID), typedValue(d.SecretAccessKey)
	needEndpoint := s.Provider == "minio" || s.Provider == "other"
	endpointDesc := "Leave empty for the provider's standard endpoint in that region."
	if needEndpoint {
		endpointDesc = "Such as https://minio.example.com:9000 (http:// only for a server on this host)."
	}
	stored := s.CredentialsFile
	fields := append(problemNote(problem),
		nameInput("Name of this destination", &d.Name, w.destNameTaken(d)),
		huh.NewInput().Title("Region").Description("Where the bucket lives, such as "+setup.OrDefault(defaultRegion(s.Provider), "us-east-1")+".").Value(&s.Region),
		huh.NewInput().Title("Endpoint URL").Description(endpointDesc).Value(&s.Endpoint).Validate(orCurrent(&s.Endpoint, setup.CheckEndpoint(needEndpoint))),
		huh.NewInput().Title("Bucket").Description("It must exist already.").Value(&s.Bucket).Validate(orCurrent(&s.Bucket, setup.CheckBucket)),
		huh.NewInput().Title("Prefix inside the bucket (optional)").Value(&s.Prefix),
		huh.NewInput().Title("Access key ID").
			Description(setup.OrDefault(map[bool]string{true: "Leave empty to keep the stored credentials."}[stored != ""],
				"Leave empty to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the agent's environment.")).
			Value(&keyID),
		w.secretInput("Secret access key", stored, &secret).Validate(func(v string) error {
			if (keyID == "") != (v == "") {
				return errors.New("give both the access key ID and the secret access key, or leave both empty")
			}
			return nil
		}),
	)
	if err := w.form(w.group(fields...)); err != nil {
		return err
	}
	d.AccessKeyID, d.SecretAccessKey = nil, nil
	if keyID != "" {
		d.AccessKeyID, d.SecretAccessKey = setup.TypedSecret(keyID), setup.TypedSecret(secret)
	}
	return nil
}

func (w *wizard) sftpForm(d *setup.DestinationAnswer, problem string) error {
	s := d.SFTP
	port := strconv.Itoa(orZero(s.Port, 22))
	auth := "key"
	if s.PrivateKeyFile == "" && s.PasswordFile != "" {
		auth = "password"
	}
	password := typedValue(d.Password)
	err := w.form(
		w.group(append(problemNote(problem),
			nameInput("Name of this destination", &d.Name, w.destNameTaken(d)),
			huh.NewInput().Title("SFTP server").Description("Host name or IP address.").Value(&s.Host).Validate(orCurrent(&s.Host, setup.CheckHost)),
			huh.NewInput().Title("Port").Value(&port).Validate(orCurrent(&port, setup.CheckPort)),
			huh.NewInput().Title("User").Value(&s.User).Validate(orCurrent(&s.User, required("a user"))),
			huh.NewInput().Title("Directory on the server").Value(&s.Path).Validate(orCurrent(&s.Path, required("a directory"))),
			huh.NewSelect[string]().Value(&auth).Title("Log in with").Options(
				huh.NewOption("A private key file (recommended)", "key"),
				huh.NewOption("A password", "password")),
		)...),
		w.hideIf(w.group(huh.NewInput().Title("Private key file").Value(&s.PrivateKeyFile).Validate(orCurrent(&s.PrivateKeyFile, setup.CheckExistingFile))), func() bool { return auth != "key" }),
		w.hideIf(w.group(w.secretInput("Password", s.PasswordFile, &password).Validate(func(v string) error {
			if v == "" && s.PasswordFile == "" {
				return errors.New("a password is required")
			}
			return nil
		})), func() bool { return auth != "password" }),
		w.group(huh.NewInput().Title("known_hosts file with the server's host key").
			Description("The server's key is always verified.").
			Value(&s.KnownHostsFile).Validate(orCurrent(&s.KnownHostsFile, func(f string) error {
			p, _ := strconv.Atoi(port)
			return setup.CheckKnownHosts(s.Host, p)(f)
		}))),
	)
	if err != nil {
		return err
	}
	s.Port = atoiOr(port, 22)
	d.Password = nil
	if auth == "key" {
		s.PasswordFile = ""
	} else {
		s.PrivateKeyFile = ""
		if password != "" {
			d.Password = setup.TypedSecret(password)
		}
	}
	return nil
}

func (w *wizard) ftpForm(d *setup.DestinationAnswer, problem string) error {
	s := d.FTP
	port := strconv.Itoa(orZero(s.Port, 21))
	tls := setup.OrDefault(s.TLS, "explicit")
	password := typedValue(d.Password)
	err := w.form(w.group(append(problemNote(problem),
		nameInput("Name of this destination", &d.Name, w.destNameTaken(d)),
		huh.NewInput().Title("FTP server").Description("Host name or IP address.").Value(&s.Host).Validate(orCurrent(&s.Host, setup.CheckHost)),
		huh.NewSelect[string]().Value(&tls).Title("Encryption of the connection").Options(
			huh.NewOption("Explicit TLS (AUTH TLS, usually port 21) — recommended", "explicit"),
			huh.NewOption("Implicit TLS (FTPS, usually port 990)", "implicit"),
			huh.NewOption("None: password and data travel in clear text", "none")),
		huh.NewInput().Title("Port").Value(&port).Validate(orCurrent(&port, setup.CheckPort)),
		huh.NewInput().Title("User").Value(&s.User).Validate(orCurrent(&s.User, required("a user"))),
		w.secretInput("Password", s.PasswordFile, &password).Validate(func(v string) error {
			if v == "" && s.PasswordFile == "" {
				return errors.New("a password is required")
			}
			return nil
		}),
		huh.NewInput().Title("Directory on the server").Value(&s.Path).Validate(orCurrent(&s.Path, required("a directory"))),
		huh.NewInput().Title("CA certificate file (optional)").Description("For a server whose certificate is not signed by a public authority.").
			Value(&s.CAFile).Validate(orCurrent(&s.CAFile, func(v string) error {
			if v == "" {
				return nil
			}
			return setup.CheckExistingFile(v)
		})),
	)...))
	if err != nil {
		return err
	}
	s.Port, s.TLS = atoiOr(port, 21), tls
	if s.Port == 21 {
		s.Port = 0
	}
	if s.TLS == "explicit" {
		s.TLS = ""
	}
	d.Password = nil
	if password != "" {
		d.Password = setup.TypedSecret(password)
	}
	return nil
}

// orCurrent makes an empty answer mean the value shown: in --accessible
// mode an empty line keeps the default, but the check sees the empty line.
func orCurrent(v *string, check func(string) error) func(string) error {
	return func(s string) error {
		if strings.TrimSpace(s) == "" {
			s = *v
		}
		return check(s)
	}
}

// typedValue is a secret typed earlier in this session, or "".
func typedValue(s *setup.Secret) string {
	if s != nil && s.Loaded {
		return s.Value
	}
	return ""
}

func required(what string) func(string) error {
	return func(s string) error {
		if strings.TrimSpace(s) == "" {
			return errors.New(what + " is required")
		}
		return nil
	}
}

func orZero(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return n
}

// Source kinds as the wizard offers them.
var sourceKinds = []struct{ label, value string }{
	{"Files and directories", "files"},
	{"PostgreSQL databases", "postgres"},
	{"MySQL or MariaDB databases", "mysql"},
	{"Docker volumes", "docker"},
	{"This system's configuration", "system"},
}

func sourceKindOf(s setup.SourceAnswer) string {
	switch s.Driver() {
	case "dockerVolume":
		return "docker"
	case "":
		return "files"
	}
	return s.Driver()
}

func (w *wizard) sources() error {
	for i := 0; i < len(w.a.Sources); {
		remove, err := w.source(&w.a.Sources[i], true, i+1)
		if err != nil {
			return err
		}
		if remove {
			w.a.Sources = slices.Delete(w.a.Sources, i, i+1)
			continue
		}
		i++
	}
	for {
		if len(w.a.Sources) > 0 {
			more, err := w.confirm("Add another source?",
				"Such as a database besides the files. Each source is read once per run and stored as its own data object.", false)
			if err != nil || !more {
				return err
			}
		}
		w.a.Sources = append(w.a.Sources, setup.SourceAnswer{})
		n := len(w.a.Sources)
		if _, err := w.source(&w.a.Sources[n-1], false, n); err != nil {
			w.a.Sources = w.a.Sources[:n-1]
			if !errors.Is(err, errBack) || n == 1 {
				return err
			}
		}
	}
}

func (w *wizard) sourceNameTaken(self *setup.SourceAnswer) func(string) bool {
	return func(s string) bool {
		for i := range w.a.Sources {
			if &w.a.Sources[i] != self && w.a.Sources[i].Name == s {
				return true
			}
		}
		return false
	}
}

func (w *wizard) uniqueSourceName(base string) string {
	name := base
	for i := 2; w.sourceNameTaken(nil)(name); i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return name
}

func firstExisting(def string, paths ...string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return def
}

func (w *wizard) source(s *setup.SourceAnswer, existing bool, n int) (bool, error) {
	for {
		remove, err := w.sourceOnce(s, existing, n)
		if !errors.Is(err, errAgain) {
			return remove, err
		}
	}
}

func (w *wizard) sourceOnce(s *setup.SourceAnswer, existing bool, n int) (bool, error) {
	kind := sourceKindOf(*s)
	opts := []huh.Option[string]{}
	for _, k := range sourceKinds {
		opts = append(opts, huh.NewOption(k.label, k.value))
	}
	title := fmt.Sprintf("Source %d: what should be backed up?", n)
	if existing {
		title = fmt.Sprintf("Source %d: %s (%s)", n, s.Name, setup.DescribeSource(*s))
		opts = append(opts, huh.NewOption("Remove this source", "remove"))
	}
	if err := w.form(w.group(huh.NewSelect[string]().Value(&kind).Title(title).Options(opts...))); err != nil {
		return false, err
	}
	if kind == "remove" {
		return true, nil
	}
	if kind != sourceKindOf(*s) || s.Driver() == "" {
		name := s.Name
		*s = setup.SourceAnswer{Source: v1.Source{Name: name, Hooks: s.Hooks}}
		switch kind {
		case "files":
			s.Files = &v1.FilesSource{OneFileSystem: true}
		case "postgres":
			s.Postgres = &v1.PostgresSource{Host: firstExisting("localhost", "/var/run/postgresql"), User: "postgres"}
		case "mysql":
			s.MySQL = &v1.MySQLSource{User: "root", Socket: firstExisting("", "/run/mysqld/mysqld.sock", "/var/run/mysqld/mysqld.sock")}
			if s.MySQL.Socket == "" {
				s.MySQL.Host = "localhost"
			}
		case "docker":
			s.DockerVolume = &v1.DockerVolumeSource{}
		case "system":
			s.System = &v1.SystemSource{}
		}
		if s.Name == "" {
			s.Name = w.uniqueSourceName(kind)
		}
	}
	problem := ""
	for {
		var err error
		switch {
		case s.Files != nil:
			err = w.filesForm(s)
		case s.Postgres != nil:
			err = w.postgresForm(s, problem)
		case s.MySQL != nil:
			err = w.mysqlForm(s, problem)
		case s.DockerVolume != nil:
			err = w.dockerForm(s, problem)
		case s.System != nil:
			err = w.systemForm(s)
		}
		if errors.Is(err, errBack) {
			return false, errAgain
		}
		if err != nil {
			return false, err
		}
		if w.f.skipChecks || s.Files != nil || s.System != nil {
			w.done(fmt.Sprintf("source %s: %s", s.Name, setup.DescribeSource(*s)))
			return false, nil
		}
		fmt.Fprintf(w.out, "Checking %s ...\n", setup.DescribeSource(*s))
		res := setup.CheckSourceLive(w.ctx, *s)
		if w.report(res) {
			w.done(fmt.Sprintf("source %s: %s", s.Name, setup.DescribeSource(*s)))
			return false, nil
		}
		problem = fmt.Sprintf("%s did not work: %v\nCorrect the answers below.", setup.DescribeSource(*s), res.Err)
	}
}

func (w *wizard) filesForm(s *setup.SourceAnswer) error {
	f := s.Files
	paths := strings.Join(f.Paths, ", ")
	exclude := strings.Join(f.Exclude, ", ")
	err := w.form(w.group(
		nameInput("Name of this source", &s.Name, w.sourceNameTaken(s)),
		huh.NewInput().Title("Paths to back up").
			Description("Separate several with commas, such as /etc, /var/www, /home.").
			Value(&paths).Validate(orCurrent(&paths, setup.CheckPathList)),
		huh.NewInput().Title("Exclude (optional)").
			Description("Glob patterns, separated by commas; ** matches any directories: **/*.log, **/cache/**, /var/www/tmp").
			Value(&exclude),
		huh.NewConfirm().Title("Stay on the file systems of these paths?").
			Description("Yes skips other disks, network shares and /proc mounted below them.").
			Value(&f.OneFileSystem),
	))
	f.Paths, f.Exclude = setup.SplitList(paths), setup.SplitList(exclude)
	return err
}

func (w *wizard) postgresForm(s *setup.SourceAnswer, problem string) error {
	p := s.Postgres
	port := ""
	if p.Port != 0 {
		port = strconv.Itoa(p.Port)
	}
	dbs := strings.Join(p.Databases, ", ")
	globals := p.Globals == nil || *p.Globals
	password := typedValue(s.Password)
	err := w.form(w.group(append(problemNote(problem),
		nameInput("Name of this source", &s.Name, w.sourceNameTaken(s)),
		huh.NewInput().Title("PostgreSQL server").
			Description("Host name, or the directory of its socket (such as /var/run/postgresql) on this host.").
			Value(&p.Host).Validate(orCurrent(&p.Host, setup.CheckDBHost)),
		huh.NewInput().Title("Port").Description("Empty for 5432.").Value(&port).Validate(orCurrent(&port, setup.CheckPort)),
		huh.NewInput().Title("User").Value(&p.User).Validate(orCurrent(&p.User, required("a user"))),
		w.secretInput("Password", p.PasswordFile, &password).
			Description(setup.OrDefault(map[bool]string{true: "Leave empty to keep the one stored in " + p.PasswordFile + "."}[p.PasswordFile != ""],
				"Leave empty for peer or trust authentication over the socket. Stored in its own file of mode 0600.")),
		huh.NewInput().Title("Databases").Description("Separated by commas; empty for all of them.").Value(&dbs),
		huh.NewConfirm().Title("Include roles and tablespaces (globals)?").Value(&globals),
	)...))
	if err != nil {
		return err
	}
	p.Port = atoiOr(port, 0)
	p.Databases = setup.SplitList(dbs)
	p.Globals = nil
	if !globals {
		p.Globals = &globals
	}
	s.Password = nil
	if password != "" {
		s.Password = setup.TypedSecret(password)
	}
	return nil
}

func (w *wizard) mysqlForm(s *setup.SourceAnswer, problem string) error {
	m := s.MySQL
	port := ""
	if m.Port != 0 {
		port = strconv.Itoa(m.Port)
	}
	dbs := strings.Join(m.Databases, ", ")
	password := typedValue(s.Password)
	err := w.form(w.group(append(problemNote(problem),
		nameInput("Name of this source", &s.Name, w.sourceNameTaken(s)),
		huh.NewInput().Title("Socket (on this host)").Description("Empty to connect over TCP to the host below.").
			Value(&m.Socket).Validate(orCurrent(&m.Socket, func(v string) error {
			if v == "" {
				return nil
			}
			return setup.CheckExisting(v)
		})),
		huh.NewInput().Title("Host").Description("When there is no socket.").Value(&m.Host).Validate(orCurrent(&m.Host, setup.CheckDBHost)),
		huh.NewInput().Title("Port").Description("Empty for 3306.").Value(&port).Validate(orCurrent(&port, setup.CheckPort)),
		huh.NewInput().Title("User").Value(&m.User).Validate(orCurrent(&m.User, required("a user"))),
		w.secretInput("Password", m.PasswordFile, &password).
			Description(setup.OrDefault(map[bool]string{true: "Leave empty to keep the one stored in " + m.PasswordFile + "."}[m.PasswordFile != ""],
				"Leave empty for socket authentication. Stored in its own file of mode 0600.")),
		huh.NewInput().Title("Databases").Description("Separated by commas; empty for all of them.").Value(&dbs),
	)...))
	if err != nil {
		return err
	}
	m.Port = atoiOr(port, 0)
	m.Databases = setup.SplitList(dbs)
	s.Password = nil
	if password != "" {
		s.Password = setup.TypedSecret(password)
	}
	return nil
}

func (w *wizard) dockerForm(s *setup.SourceAnswer, problem string) error {
	dv := s.DockerVolume
	by := "name"
	label := ""
	for k, v := range dv.Selector {
		by, label = "label", k+"="+v
	}
	err := w.form(
		w.group(append(problemNote(problem),
			nameInput("Name of this source", &s.Name, w.sourceNameTaken(s)),
			huh.NewSelect[string]().Value(&by).Title("Which volumes?").Options(
				huh.NewOption("One volume, by name", "name"),
				huh.NewOption("Every volume with a label", "label")),
		)...),
		w.hideIf(w.group(huh.NewInput().Title("Volume name").Value(&dv.Name).Validate(orCurrent(&dv.Name, setup.CheckVolume))), func() bool { return by != "name" }),
		w.hideIf(w.group(huh.NewInput().Title("Label").Description("KEY=VALUE, such as backup=true").Value(&label).
			Validate(orCurrent(&label, func(v string) error {
				if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
					return errors.New("write the label as KEY=VALUE, such as backup=true")
				}
				return nil
			}))), func() bool { return by != "label" }),
		w.group(huh.NewConfirm().Title("Stop the containers using them during the backup?").
			Description("Yes gives a consistent copy of databases kept in volumes; they restart right after.").
			Value(&dv.StopContainers)),
	)
	if err != nil {
		return err
	}
	if by == "name" {
		dv.Selector = nil
	} else {
		k, v, _ := strings.Cut(label, "=")
		dv.Name, dv.Selector = "", map[string]string{k: v}
	}
	return nil
}

func (w *wizard) systemForm(s *setup.SourceAnswer) error {
	extra := strings.Join(s.System.ExtraPaths, ", ")
	err := w.form(w.group(
		nameInput("Name of this source", &s.Name, w.sourceNameTaken(s)),
		huh.NewInput().Title("Extra paths (optional)").
			Description("Besides the system's configuration, separated by commas, such as /opt/app/config.").
			Value(&extra).Validate(orCurrent(&extra, func(v string) error {
			if strings.TrimSpace(v) == "" {
				return nil
			}
			return setup.CheckPathList(v)
		})),
	))
	s.System.ExtraPaths = setup.SplitList(extra)
	return err
}

func (w *wizard) encryption() error {
	e := &w.a.Encryption
	for {
		mode := setup.OrDefault(e.Mode, "age")
		if err := w.form(w.group(huh.NewSelect[string]().Value(&mode).Title("Encryption").
			Description("Backups leave this host: encrypt them.").
			Options(
				huh.NewOption("age (recommended): this host holds only the public key, so it cannot read old backups", "age"),
				huh.NewOption("openssl AES-256-CBC with a key file (as the original Aegis did)", "openssl"),
				huh.NewOption("None: store backups unencrypted", "none"),
			))); err != nil {
			return err
		}
		if mode != e.Mode {
			*e = setup.EncryptionAnswer{Mode: mode}
		}
		var err error
		switch mode {
		case "age":
			err = w.ageKey()
		case "openssl":
			err = w.opensslKey()
		case "none":
			clear, cerr := w.confirm("Store backups unencrypted?", "Anyone who can read the destination can then read every file and database in them.", false)
			if errors.Is(cerr, errBack) || cerr == nil && !clear {
				continue
			}
			err = cerr
		}
		if err == nil {
			w.done("encryption: " + describeEncryption(*e) + map[bool]string{true: " (removed from this host after the setup)"}[w.removeIdentity])
		}
		return err
	}
}

func (w *wizard) ageKey() error {
	e := &w.a.Encryption
	w.removeIdentity = false
	how := "generate"
	opts := []huh.Option[string]{
		huh.NewOption("Generate a new key (recommended)", "generate"),
		huh.NewOption("Use public keys I have (age1...)", "public"),
	}
	if len(e.Recipients) > 0 || e.RecipientsFile != "" {
		how = "keep"
		what := strings.Join(e.Recipients, ", ")
		if e.RecipientsFile != "" {
			what = setup.OrDefault(what+", ", "") + "the keys in " + e.RecipientsFile
		}
		opts = append([]huh.Option[string]{huh.NewOption("Keep the current key(s): "+shorten(what, 60), "keep")}, opts...)
	}
	if err := w.form(w.group(huh.NewSelect[string]().Value(&how).Title("age key").Options(opts...))); err != nil {
		return err
	}
	switch how {
	case "keep":
		return nil
	case "public":
		list := strings.Join(e.Recipients, ", ")
		if err := w.form(w.group(huh.NewInput().Title("age public keys").
			Description("Separated by commas. Restoring needs one of their identities.").
			Value(&list).Validate(orCurrent(&list, setup.CheckRecipients)))); err != nil {
			return err
		}
		*e = setup.EncryptionAnswer{Mode: "age", Recipients: setup.SplitList(list)}
		return nil
	}
	// Generate (or reuse the identity this policy already has).
	*e = setup.EncryptionAnswer{Mode: "age"}
	if err := e.Prepare(w.a.Policy, w.dirs, &setup.Plan{}); err != nil {
		return err
	}
	state := "It is written, mode 0600, when you confirm at the end."
	if e.NewKey == nil {
		state = "It exists already and is used as it is."
	}
	if err := w.keyWarning("Your age key", fmt.Sprintf(
		"Identity (the secret key): %s\n%s\nPublic key (goes into the manifest): %s",
		e.IdentityFile, state, e.Recipients[0]), e.IdentityFile); err != nil {
		return err
	}
	remove, err := w.confirm("Remove the identity from this host after the setup?",
		"Backups need only the public key. Without the identity here, whoever takes this server cannot read\n"+
			"the backups; restore and verify then need --identity with your copy. It is removed at the very end,\n"+
			"after the first backup and once you confirm your copy.", false)
	w.removeIdentity = remove
	return err
}

func (w *wizard) opensslKey() error {
	e := &w.a.Encryption
	if e.KeyFile == "" {
		e.KeyFile = setup.OpenSSLKeyPath(w.dirs, w.a.Policy)
	}
	if err := w.form(w.group(huh.NewInput().Title("openssl key file").
		Description("Generated when missing: 64 hex characters on one line, what openssl enc -pass file: reads.").
		Value(&e.KeyFile).Validate(orCurrent(&e.KeyFile, func(v string) error {
		if err := setup.CheckAbsPath(v); err != nil {
			return err
		}
		if fi, err := os.Stat(v); err == nil && fi.IsDir() {
			return fmt.Errorf("%s is a directory: give a file", v)
		}
		return nil
	})))); err != nil {
		return err
	}
	e.NewKey = nil
	if err := e.Prepare(w.a.Policy, w.dirs, &setup.Plan{}); err != nil {
		return err
	}
	state := "It exists already and is used as it is."
	if e.NewKey != nil {
		state = "It is generated and written, mode 0600, when you confirm at the end."
	}
	return w.keyWarning("Your openssl key", "Key file: "+e.KeyFile+"\n"+state, e.KeyFile)
}

// keyWarning says plainly where the key is and that it must be kept off
// this host, and asks the user to say they will.
func (w *wizard) keyWarning(title, what, file string) error {
	ok := false
	return w.form(w.group(
		huh.NewNote().Title(title).Description(what+"\n\n"+
			"Without this key NO backup can be restored. If this server is lost, the copy\n"+
			"on it is lost too: after the setup, store a copy somewhere safe OFF this\n"+
			"server (a password manager, a vault, a printout in a safe):\n\n"+
			"    cat "+file),
		huh.NewConfirm().Title("Will you keep a copy of the key off this server?").
			Affirmative("Yes, I will").Negative("No").Value(&ok).
			Validate(func(v bool) error {
				if !v {
					return errors.New("without a copy off this server, losing the server loses every backup: answer Yes once you know where the copy goes")
				}
				return nil
			}),
	))
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func (w *wizard) schedule() error {
	a := w.a
	preset := "custom"
	for _, p := range setup.SchedulePresets {
		if p.Expr == a.Schedule {
			preset = p.Expr
		}
	}
	opts := []huh.Option[string]{}
	for _, p := range setup.SchedulePresets {
		opts = append(opts, huh.NewOption(fmt.Sprintf("%s (%s)", p.Label, p.Expr), p.Expr))
	}
	opts = append(opts, huh.NewOption("Custom: a cron expression or @every", "custom"))
	custom := a.Schedule
	tz := a.TimeZone
	r := a.Retention
	counts := []*string{ptr(strconv.Itoa(r.Hourly)), ptr(strconv.Itoa(r.Daily)), ptr(strconv.Itoa(r.Weekly)), ptr(strconv.Itoa(r.Monthly)), ptr(strconv.Itoa(r.Yearly))}
	count := func(title, desc string, v *string) *huh.Input {
		return huh.NewInput().Title(title).Description(desc).Value(v).Validate(orCurrent(v, setup.CheckCount))
	}
	err := w.form(
		w.group(
			huh.NewSelect[string]().Value(&preset).Title("When should backups run?").Options(opts...),
			huh.NewInput().Title("Time zone of the schedule").Description("An IANA name, such as UTC or Europe/Berlin.").
				Value(&tz).Validate(orCurrent(&tz, setup.CheckTimeZone)),
		),
		w.hideIf(w.group(huh.NewInput().Title("Schedule").
			Description("5 cron fields (minute hour day-of-month month weekday), such as 30 2 * * *, or @daily, @every 6h.").
			Value(&custom).Validate(orCurrent(&custom, func(s string) error { return setup.CheckSchedule(tz)(s) }))), func() bool { return preset != "custom" }),
		w.group(
			huh.NewNote().Title("Retention").Description("How many snapshots to keep. A snapshot that any rule keeps is kept; the rest are deleted after each run."),
			count("Hourly", "The last snapshot of each of the last N hours.", counts[0]),
			count("Daily", "The last of each of the last N days.", counts[1]),
			count("Weekly", "The last of each of the last N weeks.", counts[2]),
			count("Monthly", "The last of each of the last N months.", counts[3]),
			count("Yearly", "The last of each of the last N years.", counts[4]).Validate(orCurrent(counts[4], func(s string) error {
				if err := setup.CheckCount(s); err != nil {
					return err
				}
				total := 0
				for _, c := range counts {
					total += atoiOr(*c, 0)
				}
				if total == 0 && r.KeepLast == 0 && r.Within == "" {
					return errors.New("every count is 0, which keeps nothing: give at least one, such as 7 daily")
				}
				return nil
			})),
		),
	)
	if err != nil {
		return err
	}
	if preset == "custom" {
		a.Schedule = strings.TrimSpace(custom)
	} else {
		a.Schedule = preset
	}
	a.TimeZone = tz
	defer func() {
		w.done(fmt.Sprintf("schedule %q (%s) in %s; keep %s", a.Schedule, setup.OrDefault(setup.DescribeSchedule(a.Schedule), "custom"), setup.OrDefault(a.TimeZone, "UTC"), describeRetention(a.Retention)))
	}()
	r.Hourly, r.Daily, r.Weekly, r.Monthly, r.Yearly = atoiOr(*counts[0], 0), atoiOr(*counts[1], 0), atoiOr(*counts[2], 0), atoiOr(*counts[3], 0), atoiOr(*counts[4], 0)
	a.Retention = r
	return nil
}

func ptr[T any](v T) *T { return &v }

func (w *wizard) notifications() error {
	n := v1.Notify{}
	if w.a.Notify != nil {
		n = *w.a.Notify
	}
	webhook := ""
	var more []v1.WebhookNotify // webhooks after the first stay as they are
	if len(n.Webhooks) > 0 {
		webhook, more = n.Webhooks[0].URL, n.Webhooks[1:]
	}
	if err := w.askNotify(&n, &webhook); err != nil {
		return err
	}
	n.Ping, webhook = strings.TrimSpace(n.Ping), strings.TrimSpace(webhook)
	n.Webhooks = more
	if webhook != "" {
		first := v1.WebhookNotify{URL: webhook}
		if old := w.a.Notify; old != nil && len(old.Webhooks) > 0 && old.Webhooks[0].URL == webhook {
			first = old.Webhooks[0] // keeps its secretFile
		}
		n.Webhooks = append([]v1.WebhookNotify{first}, more...)
	}
	var parts []string
	if n.Ping != "" {
		parts = append(parts, "ping "+n.Ping)
	}
	for _, h := range n.Webhooks {
		parts = append(parts, "webhook "+h.URL)
	}
	w.a.Notify = nil
	if len(parts) == 0 {
		w.done("notifications: none (aegis-agent status and the status files still tell)")
		return nil
	}
	if len(n.Webhooks) == 0 {
		n.OnSuccess = false
	}
	w.a.Notify = &n
	w.done("notifications: " + strings.Join(parts, "; "))
	return nil
}

// askNotify asks for the ping URL and the first webhook, and sends a
// test ping to a new ping URL; one that fails is shown above the fields
// again, and kept if the user keeps it.
func (w *wizard) askNotify(n *v1.Notify, webhook *string) error {
	problem, pinged := "", ""
	if w.a.Notify != nil {
		pinged = w.a.Notify.Ping // pinged when it was set up
	}
	for {
		err := w.form(w.group(append(problemNote(problem),
			huh.NewNote().Title("Notifications").Description("A backup nobody watches fails silently. Each is optional: Enter skips."),
			huh.NewInput().Title("Ping URL").
				Description("A monitor such as healthchecks.io or Uptime Kuma: pinged when a run starts, succeeds (URL) or fails (URL/fail).\nIf the pings stop, it alerts you, even when this host is down.").
				Placeholder("https://hc-ping.com/your-uuid").
				Value(&n.Ping).Validate(orCurrent(&n.Ping, setup.CheckURL)),
			huh.NewInput().Title("Webhook URL").
				Description("Gets a JSON body with the run's result after a failure, and after the first success that follows.").
				Placeholder("https://chat.example.com/hooks/backups").
				Value(webhook).Validate(orCurrent(webhook, setup.CheckURL)),
			huh.NewConfirm().Title("Also send the webhook after every successful run?").Value(&n.OnSuccess),
		)...))
		n.Ping = strings.TrimSpace(n.Ping)
		if err != nil || n.Ping == "" || w.f.skipChecks || n.Ping == pinged {
			return err
		}
		fmt.Fprintln(w.out, "Sending a test ping ...")
		res := setup.PingLive(w.ctx, nil, n.Ping, w.a.Policy)
		if res.Err == nil {
			fmt.Fprintln(w.out, okStyle.Render("✓ "+res.What+": the monitor got it"))
			return nil
		}
		fmt.Fprintln(w.out, badStyle.Render("✗ "+res.What+": "+res.Err.Error()))
		pinged = n.Ping
		problem = fmt.Sprintf("The %s failed: %v\nCorrect the ping URL, or keep it as it is (Enter) to use it anyway.", res.What, res.Err)
	}
}

func describeEncryption(e setup.EncryptionAnswer) string {
	switch e.Mode {
	case "age":
		if e.IdentityFile != "" {
			return "age, identity " + e.IdentityFile
		}
		return "age, to " + shorten(strings.Join(append(slices.Clone(e.Recipients), e.RecipientsFile), " "), 70)
	case "openssl":
		return "openssl, key file " + e.KeyFile
	}
	return "none"
}

func describeRetention(r v1.Retention) string {
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{r.KeepLast, "last"}, {r.Hourly, "hourly"}, {r.Daily, "daily"}, {r.Weekly, "weekly"}, {r.Monthly, "monthly"}, {r.Yearly, "yearly"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if r.Within != "" {
		parts = append(parts, "all within "+r.Within)
	}
	return setup.OrDefault(strings.Join(parts, ", "), "everything")
}

// review shows the manifests and what else init will write, and asks
// what to do: "write", "quit", or the number of the section to change.
func (w *wizard) review(secs []section) (*setup.Plan, string, error) {
	plan, err := setup.Prepare(w.a, w.dirs, w.file)
	if err != nil {
		fmt.Fprintln(w.out, badStyle.Render("✗ "+err.Error()))
	} else {
		w.showPlan(plan)
	}
	if w.removeIdentity {
		fmt.Fprintln(w.out, "The age identity "+w.a.Encryption.IdentityFile+" is removed from this host at the end, once you\nconfirm your copy: restore and verify then need --identity FILE.")
	}
	action := "write"
	opts := []huh.Option[string]{huh.NewOption("Write these files", "write")}
	for i, s := range secs {
		opts = append(opts, huh.NewOption("Change "+s.name, strconv.Itoa(i)))
	}
	opts = append(opts, huh.NewOption("Quit without writing anything", "quit"))
	if err != nil || len(plan.Problems) > 0 {
		action, opts = "1", opts[1:]
	}
	if err := w.form(w.group(huh.NewSelect[string]().Value(&action).Title("Write this setup?").
		Description("Esc goes back to the notifications.").Options(opts...))); err != nil {
		return nil, "", err
	}
	return plan, action, nil
}

// showPlan prints the manifests and the other files of plan, and its
// problems.
func (w *wizard) showPlan(plan *setup.Plan) {
	fmt.Fprintln(w.out, headStyle.Render("\nThe manifests, for "+plan.ManifestPath+":")+"\n")
	fmt.Fprintln(w.out, string(plan.Manifest))
	if len(plan.Files) > 0 {
		fmt.Fprintln(w.out, headStyle.Render("Also written, each mode 0600:"))
		for _, f := range plan.Files {
			fmt.Fprintf(w.out, "  %s  (%s)\n", f.Path, f.What)
		}
		fmt.Fprintln(w.out)
	}
	if len(plan.Problems) > 0 {
		fmt.Fprintln(w.out, badStyle.Render("These manifests would not validate:"))
		for _, p := range plan.Problems {
			fmt.Fprintln(w.out, "  "+p.Error())
		}
	}
}

func (w *wizard) write(plan *setup.Plan) error {
	fmt.Fprintln(w.out)
	if err := finishSetup(w.ctx, w.out, w.g, w.f, w.dirs, w.a, plan); err != nil {
		return err
	}
	fmt.Fprintln(w.out, okStyle.Render("✓ setup written"))
	first, err := w.confirm("Run a first backup now, and verify it?", "Runs aegis-agent run "+w.a.Policy+", then aegis-agent verify "+w.a.Policy+".", true)
	if err != nil && !errors.Is(err, errBack) {
		return err
	}
	if first {
		if err := firstBackup(w.ctx, w.out, w.out, w.g, w.a); err != nil {
			fmt.Fprintln(w.out, badStyle.Render("✗ the first backup or its verification failed: see above; the setup is written, fix what is wrong and run aegis-agent init again to edit it"))
			return err
		}
		fmt.Fprintln(w.out, okStyle.Render("✓ first backup stored and verified"))
	}
	removed := false
	if w.removeIdentity {
		if removed, err = w.removeKey(); err != nil {
			return err
		}
	}
	w.nextSteps(removed)
	return nil
}

// removeKey removes the age identity from this host once the user
// confirms a copy is kept elsewhere, and says plainly what was done.
func (w *wizard) removeKey() (bool, error) {
	file := w.a.Encryption.IdentityFile
	ok := false
	err := w.form(w.group(
		huh.NewNote().Title("Removing the identity from this host").Description(
			"Copy it off this server first, if not done yet:\n\n    cat "+file+"\n\n"+
				"Once removed, restore and verify need --identity FILE with your copy."),
		huh.NewConfirm().Title("Remove "+file+" now?").
			Affirmative("Yes, my copy is safe").Negative("No, keep it here").Value(&ok),
	))
	if err != nil && !errors.Is(err, errBack) {
		return false, err
	}
	if !ok {
		fmt.Fprintln(w.out, dimStyle.Render("· the identity stays on this host: "+file))
		return false, nil
	}
	if err := os.Remove(file); err != nil {
		return false, failed(fmt.Errorf("remove the identity: %w", err))
	}
	w.done("the identity is removed from this host: restore and verify need --identity FILE with your copy")
	return true, nil
}

func (w *wizard) nextSteps(keyRemoved bool) {
	var b strings.Builder
	b.WriteString(headStyle.Render("\nNext steps") + "\n")
	b.WriteString("  Start the agent, which runs the schedule (installed by make install):\n      systemctl enable --now aegis-agent\n")
	b.WriteString("  (A running agent picks the new manifests up by itself.)\n")
	b.WriteString("  See what it does:   aegis-agent status\n")
	switch e := w.a.Encryption; {
	case keyRemoved:
		b.WriteString("  This host has no identity to decrypt the backups (status says so):\n      aegis-agent restore " + w.a.Policy + " --identity FILE\n")
	case e.Mode == "age" && e.IdentityFile != "":
		b.WriteString("  Copy the key off this server now:   cat " + e.IdentityFile + "\n")
	case e.Mode == "openssl":
		b.WriteString("  Copy the key off this server now:   cat " + e.KeyFile + "\n")
	}
	if w.f.saveAnswers != "" {
		b.WriteString("  The same setup on another server:   aegis-agent init --non-interactive --answers " + w.f.saveAnswers + "\n")
	} else {
		b.WriteString("  Record these answers for other servers:   aegis-agent init --non-interactive --save-answers FILE\n")
	}
	b.WriteString("  Change this setup:   aegis-agent init" + map[bool]string{true: " --policy " + w.a.Policy}[len(w.others) > 0] + "\n")
	fmt.Fprint(w.out, b.String())
}
