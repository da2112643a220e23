// Interface texts in English and French. The language is the browser's unless the user picked one.
const TEXTS = {
  en: {
    "nav.live": "Live", "nav.history": "History", "nav.sensors": "Sensors", "nav.settings": "Settings",
    "nav.logout": "Log out", "nav.language": "Language",
    "sensor.all": "All sensors", "sensor.pick": "Sensor",
    "common.loading": "Loading…", "common.save": "Save", "common.saved": "Saved.", "common.retry": "Retry",
    "common.error": "Error", "common.offline": "The server cannot be reached. Retrying…",
    "empty.sensors": "No sensor yet: start a collector (make run starts the simulator), and it appears here.",
    "install.title": "Welcome to CitizenWatt",
    "install.intro": "First run: create the administrator account of this household.",
    "install.login": "Login", "install.password": "Password (8 characters or more)",
    "install.confirm": "Password again", "install.submit": "Create and start",
    "install.mismatch": "The two passwords differ.",
    "login.title": "Log in", "login.login": "Login", "login.password": "Password", "login.submit": "Log in",
    "live.title": "Power now", "live.watts": "W", "live.lastMinutes": "Last 10 minutes",
    "live.updated": "updated {s} s ago", "live.waiting": "Waiting for a reading…", "live.silent": "Last reading {ago}: is the collector running?",
    "live.reconnecting": "Live stream interrupted, reconnecting…",
    "live.today": "Today:", "live.tariff.day": "Peak hours", "live.tariff.night": "Off-peak hours",
    // Issue 13: a figure that may be out of date, and a server that does not answer, said in words.
    "live.stale": "No news for {s} s — the figure may be out of date.",
    "live.interrupted": "No news from the server, reconnecting… Last reading {ago}: the figure may be out of date.",
    "live.fresh": "Live readings are back.",
    "common.timeout": "The server does not answer. Retrying…", "common.back": "The server answers again.",
    "energy.flows": "Imported {in} kWh · exported {out} kWh · net {net} kWh",
    "history.day": "Day", "history.week": "Week", "history.month": "Month", "history.year": "Year",
    "history.prev": "Previous", "history.next": "Next", "history.date": "Date",
    "history.kwh": "kWh", "history.euros": "€",
    "history.total": "Total", "history.dayPart": "Peak", "history.nightPart": "Off-peak",
    "history.empty": "No readings in this period.", "history.pointHint": "Point at or tap a bar for its value.", "history.noPrice": "no price set",
    "history.download": "Download (CSV):", "history.csvEnergy": "kWh and € per bar", "history.csvReadings": "every reading",
    "history.compare": "Compare", "history.comparePrevious": "previous period", "history.compareYear": "same period last year",
    "history.bySensor": "by sensor", "history.bySensorAll": "Pick “All sensors” to split the household by sensor.",
    "history.previous.day": "Day before", "history.previous.week": "Week before", "history.previous.month": "Month before", "history.previous.year": "Year before",
    "history.lastYear": "A year earlier", "history.lastYearWeek": "52 weeks earlier",
    "history.change": "{change} like for like", "history.changeHelp": "over the bars measured in both periods: {n}", "history.noChange": "nothing to compare with",
    "sensors.title": "Sensors", "sensors.name": "Sensor", "sensors.kind": "Kind", "sensors.state": "State",
    "sensors.lastSeen": "Last seen", "sensors.battery": "Battery", "sensors.today": "Readings today",
    "sensors.power": "Power", "sensors.online": "online", "sensors.offline": "offline", "sensors.never": "never", "sensors.simulated": "simulated",
    "settings.title": "Settings",
    "settings.provider": "Energy provider and tariff", "settings.providerPick": "Provider",
    "settings.prices": "peak {day} €/kWh · off-peak {night} €/kWh · subscription {sub} €/month",
    "settings.night": "Off-peak hours from today",
    "settings.nightHelp": "A new version of your tariff from today with these off-peak hours; earlier days keep theirs. For several windows or another date, add a version above.",
    "tariff.title": "Your tariff", "tariff.help": "Which tariff applies from which date. A change applies from its date and never re-prices earlier days.",
    "tariff.from": "From", "tariff.tariff": "Tariff", "tariff.use": "Use this tariff from this date",
    "tariff.current": "in force", "tariff.planned": "planned", "tariff.none": "No tariff chosen yet.",
    "tariff.used": "{name} from {date}.",
    "tariff.versionsOf": "Versions of {name}", "tariff.versionFrom": "From {date}", "tariff.inForce": "in force today",
    "tariff.subscriptionIs": "Subscription {euros} €/month", "tariff.period": "Period",
    "tariff.windowsAre": "{list}; {other} the rest of the day", "tariff.allDay": "{period} all day",
    "tariff.exportIs": "Export credited {price} €/kWh", "tariff.deleteVersion": "Delete this version",
    "tariff.newVersionOf": "New version of {name}",
    "tariff.versionHelp": "A price change or new hours from a date: earlier days keep the version they had.",
    "tariff.addVersion": "Add this version", "tariff.versionSaved": "Version from {date} saved.",
    "tariff.own": "Type your own tariff", "tariff.name": "Name of the tariff",
    "tariff.applyOwn": "Use it for my household from its first date", "tariff.create": "Create the tariff",
    "tariff.created": "Tariff “{name}” created.",
    "tariff.validFrom": "Valid from", "tariff.subscription": "Subscription (€/month)",
    "tariff.prices": "Periods and their price (€/kWh)", "tariff.pricesTempo": "Periods and their price per day colour (€/kWh)",
    "tariff.periodsHelp": "The first period applies outside the windows below.",
    "tariff.windows": "Time-of-use windows", "tariff.windowsHelp": "Start and end to the minute; an end before the start runs past midnight.",
    "tariff.exportPrice": "Exported energy credited (€/kWh, 0 for none)",
    "tariff.addPeriod": "Add a period", "tariff.addWindow": "Add a window",
    "tariff.periodN": "Period {n} name", "tariff.priceN": "Period {n} price (€/kWh)", "tariff.priceNColour": "Period {n} price, {colour} (€/kWh)",
    "tariff.removePeriod": "Remove period {n}", "tariff.windowStart": "Window {n} start", "tariff.windowEnd": "Window {n} end",
    "tariff.windowPeriod": "Window {n} period", "tariff.removeWindow": "Remove window {n}",
    "tariff.err.number": "{what}: a price of 0 or more is needed.", "tariff.err.periodName": "Every period needs a name.",
    "tariff.err.periodTwice": "Two periods have the same name.", "tariff.err.date": "The date is missing.",
    "tariff.err.window": "Every window needs a start and an end.",
    "tariff.kind.base": "Base", "tariff.kind.hc": "peak/off-peak", "tariff.kind.tempo": "Tempo", "tariff.kind.custom": "your own",
    "period.base": "Base", "period.peak": "Peak", "period.offpeak": "Off-peak",
    "tempo.title": "Tempo days", "tempo.help": "Tempo prices depend on the colour of the day, announced the day before.",
    "tempo.today": "Today:", "tempo.tomorrow": "Tomorrow:", "tempo.unknown": "not known yet",
    "tempo.day": "Day", "tempo.colour": "Colour", "tempo.saved": "{date}: {colour}.",
    "tempo.blue": "Blue day", "tempo.white": "White day", "tempo.red": "Red day",
    "costs.assumed": "(assumed)", "costs.subscription": "Subscription", "costs.includeSubscription": "include subscription",
    "costs.export": "Export credit", "costs.part": "Part", "costs.kwh": "kWh", "costs.price": "€/kWh", "costs.euros": "€",
    "costs.total": "Total", "costs.prorated": "prorated over the period",
    "settings.nightNone": "No off-peak hours", "settings.nightStart": "Starts", "settings.nightEnd": "Ends",
    "settings.password": "Change my password", "settings.current": "Current password",
    "settings.new": "New password (8 characters or more)", "settings.passwordDone": "Password changed.",
    "settings.radio": "CitizenWatt radio sensor (nRF24)",
    "settings.radioHelp": "The AES key and pipe address flashed in the sensor. The collector picks them up at once.",
    "settings.radioSensor": "Collector sensor id", "settings.radioKey": "AES key (32 hex digits or 0-1-…-15)",
    "settings.radioAddress": "Pipe address (hex)", "settings.radioSaved": "Saved and sent to the collector.",
    "settings.radioQueued": "Saved; it reaches the collector when the broker is back.",
    "settings.radioKnown": "Configured: {list}",
    // Charts' text alternative (charts.js) and the tariff editor's named rows (issue 13, accessibility).
    "chart.name": "Chart: {series}{unit}", "chart.noData": "No values yet.",
    "chart.summaryAll": "{count} points from {first} to {last}; the table that follows lists them.",
    "chart.summaryRange": "{count} points from {first} to {last}; the table that follows gives each series' latest, lowest and highest value.",
    "chart.when": "When", "chart.series": "Series", "chart.latest": "Latest", "chart.lowest": "Lowest", "chart.highest": "Highest",
    "tariff.periodRow": "Period {n}", "tariff.windowRow": "Window {n}",
    "sensors.standby": "Standby", "sensors.energyToday": "Energy today",
    "sensors.standbyHelp": "Standby: the lowest power held for an hour at night (median of the last nights), and what it costs in a year at your price.",
    "alerts.title": "Alerts", "alerts.perYear": "{euros} €/year",
    "alerts.silent": "{sensor}: no reading since {since}.",
    "alerts.silentPeriod": "{sensor}: no reading since {since} (one every {period} s expected).",
    "alerts.unusual": "{sensor}: {kwh} kWh between {from} and {to}, usually {usual} kWh on a {weekday} at this hour.",
    "alerts.standby": "{sensor}: standby power {watts} W, above {limit} W.",
    "alerts.standbyCost": "{sensor}: standby power {watts} W, about {euros} € a year (above {limit} W).",
    "time.s": "{n} s ago", "time.min": "{n} min ago", "time.h": "{n} h ago", "time.d": "{n} d ago",
    // The api's refusals by code (services/api/citizenwatt_api/errors.py), with their params; an
    // unknown code keeps the server's English. {wait} is params.retry_after said as a duration.
    "wait.s": "{n} s", "wait.min": "{n} min",
    "error.error": "Something went wrong on the server.", "error.invalid_parameters": "Invalid parameters.",
    "error.invalid_parameters.field": "Invalid value for “{field}”.",
    "error.authentication_required": "Please log in.", "error.forbidden": "Access forbidden.",
    "error.not_found": "Not found.", "error.method_not_allowed": "This action is not allowed here.",
    "error.conflict": "This conflicts with what is already saved.", "error.too_large": "Too large.",
    "error.too_many_requests": "Too many requests: try again shortly.",
    "error.unavailable": "The server is not available: try again shortly.",
    "error.database_unavailable": "The database is not available: try again shortly.",
    "error.server_busy": "The server is busy: try again shortly.",
    "error.invalid_text": "The text contains characters that cannot be stored.",
    "error.too_many_logins": "Too many failed logins: try again in {wait}.",
    "error.wrong_credentials": "Wrong login or password.", "error.wrong_current_password": "The current password is wrong.",
    "error.password_too_short": "The new password needs at least {min_length} characters.",
    "error.login_and_password_needed": "A login and a password of at least {min_length} characters, please.",
    "error.already_installed": "Already installed: log in instead.",
    "error.cross_site_refused": "Refused: this request did not come from CitizenWatt's own page.",
    "error.unknown_token": "Unknown or revoked API token.", "error.admin_only": "Only an administrator may do this.",
    "error.invalid_token_name": "A token name of 1 to 100 characters, please.", "error.no_active_token": "No active token {token}.",
    "error.body_not_json": "The request is not valid JSON.",
    "error.invalid_sensor": "Unknown sensor choice.", "error.unknown_sensor": "There is no sensor {sensor}.",
    "error.unknown_time_zone": "Unknown time zone “{zone}”.", "error.outside_calendar": "This date is outside the calendar.",
    "error.end_before_start": "The end must be on or after the start.",
    "error.range_too_long": "At most {max_days} days in one file: export the rest in another.",
    "error.bucket_not_allowed": "This period cannot be cut that way (possible: {allowed}).",
    "error.invalid_comparison": "“{value}” is not a comparison.", "error.invalid_since": "Invalid start time.",
    "error.too_many_values": "Too many values: at most {limit}.", "error.too_many_buckets": "Too many bars: at most {limit}.",
    "error.unknown_provider": "There is no provider {provider}.", "error.invalid_provider": "Unknown provider choice.",
    "error.invalid_night_window": "Off-peak hours refused: {detail}.",
    "error.invalid_radio_config": "AES key or address refused: {detail}.",
    "error.invalid_tariff_version": "The version from {valid_from} is refused: {detail}.",
    "error.unknown_tariff": "There is no tariff {tariff}.", "error.tariff_name_taken": "A tariff named “{name}” exists already.",
    "error.version_without_date": "Every version needs its start date.",
    "error.duplicate_version_date": "Two versions start on the same date.",
    "error.version_date_mismatch": "The version's date differs from the one asked for.",
    "error.unknown_version": "This tariff has no version from {valid_from}.",
    "error.last_version": "A tariff keeps at least one version.",
    "error.tempo_range": "The end must be on or after the start, at most {max_days} days later.",
    "error.invalid_colour": "Unknown colour (possible: {colours}).",
    // Readings kept aside for an impossible time (sensors view, services/ui/js/quarantine.js).
    "quarantine.title": "Readings set aside",
    "quarantine.intro": "These readings carry a time that cannot be right: a collector's clock went back, or is ahead of this server's. They are kept, but count in no energy and no figure until an administrator releases them (stored at the time they carry) or deletes them.",
    "quarantine.sensor": "Sensor", "quarantine.stamped": "Stamped", "quarantine.power": "Power",
    "quarantine.reason": "Why", "quarantine.received": "Received", "quarantine.actions": "Actions",
    "quarantine.future": "Dated in the future", "quarantine.timeBack": "Clock went back",
    "quarantine.release": "Release", "quarantine.delete": "Delete",
    "quarantine.releaseLabel": "Release the reading of {sensor} stamped {time}", "quarantine.deleteLabel": "Delete the reading of {sensor} stamped {time}",
    "quarantine.released": "Reading stored at {time}.", "quarantine.duplicate": "That reading was already stored; it is off the list.",
    "quarantine.deleted": "Reading deleted.", "quarantine.more": "The {shown} most recent of {total} shown.",
    "error.unknown_quarantined_reading": "There is no reading {id} set aside (released or deleted already?).",
    "error.quarantine_conflict": "Reading {id} stays set aside: another reading of its sensor, with other values, is stored at the same instant.",
    "error.quarantine_in_future": "Reading {id} is still dated in the future: release it once its time has come, or delete it.",
    "history.hour": "{hh}:00", "history.badDate": "There is no such date: {date}.",
    "history.periods": "Period", "history.units": "Unit",
    "history.pickDay": "Day of the month", "history.pickMonth": "Month", "history.pickYear": "Year",
  },
  fr: {
    "nav.live": "Direct", "nav.history": "Historique", "nav.sensors": "Capteurs", "nav.settings": "Réglages",
    "nav.logout": "Déconnexion", "nav.language": "Langue",
    "sensor.all": "Tous les capteurs", "sensor.pick": "Capteur",
    "common.loading": "Chargement…", "common.save": "Enregistrer", "common.saved": "Enregistré.",
    "common.retry": "Réessayer", "common.error": "Erreur",
    "common.offline": "Le serveur ne répond pas. Nouvel essai…",
    "empty.sensors": "Aucun capteur pour l'instant : lancez un collecteur (make run lance le simulateur), il apparaîtra ici.",
    "install.title": "Bienvenue dans CitizenWatt",
    "install.intro": "Premier démarrage : créez le compte administrateur du foyer.",
    "install.login": "Identifiant", "install.password": "Mot de passe (8 caractères ou plus)",
    "install.confirm": "Mot de passe, à nouveau", "install.submit": "Créer et commencer",
    "install.mismatch": "Les deux mots de passe diffèrent.",
    "login.title": "Connexion", "login.login": "Identifiant", "login.password": "Mot de passe",
    "login.submit": "Se connecter",
    "live.title": "Puissance instantanée", "live.watts": "W", "live.lastMinutes": "10 dernières minutes",
    "live.updated": "mis à jour il y a {s} s", "live.waiting": "En attente d'une mesure…", "live.silent": "Dernière mesure {ago} : le collecteur tourne-t-il ?",
    "live.reconnecting": "Flux interrompu, reconnexion…",
    "live.today": "Aujourd'hui :", "live.tariff.day": "Heures pleines", "live.tariff.night": "Heures creuses",
    // Issue 13 : un chiffre peut-être dépassé, un serveur qui ne répond pas, dits en toutes lettres.
    "live.stale": "Aucune nouvelle depuis {s} s — le chiffre n'est peut-être plus à jour.",
    "live.interrupted": "Aucune nouvelle du serveur, reconnexion… Dernière mesure {ago} : le chiffre n'est peut-être plus à jour.",
    "live.fresh": "Les mesures en direct sont revenues.",
    "common.timeout": "Le serveur ne répond pas dans les temps. Nouvel essai…", "common.back": "Le serveur répond de nouveau.",
    "energy.flows": "Importé {in} kWh · exporté {out} kWh · bilan net {net} kWh",
    "history.day": "Jour", "history.week": "Semaine", "history.month": "Mois", "history.year": "Année",
    "history.prev": "Précédent", "history.next": "Suivant", "history.date": "Date",
    "history.kwh": "kWh", "history.euros": "€",
    "history.total": "Total", "history.dayPart": "Heures pleines", "history.nightPart": "Heures creuses",
    "history.empty": "Aucune mesure sur cette période.", "history.pointHint": "Pointez ou touchez une barre pour voir sa valeur.", "history.noPrice": "aucun tarif choisi",
    "history.download": "Télécharger (CSV) :", "history.csvEnergy": "kWh et € par barre", "history.csvReadings": "toutes les mesures",
    "history.compare": "Comparer", "history.comparePrevious": "période précédente", "history.compareYear": "même période l'an dernier",
    "history.bySensor": "par capteur", "history.bySensorAll": "Choisissez « Tous les capteurs » pour répartir le foyer par capteur.",
    "history.previous.day": "La veille", "history.previous.week": "Semaine précédente", "history.previous.month": "Mois précédent", "history.previous.year": "Année précédente",
    "history.lastYear": "Un an plus tôt", "history.lastYearWeek": "52 semaines plus tôt",
    "history.change": "{change} à périmètre égal", "history.changeHelp": "sur les barres mesurées dans les deux périodes : {n}", "history.noChange": "rien à comparer",
    "sensors.title": "Capteurs", "sensors.name": "Capteur", "sensors.kind": "Type", "sensors.state": "État",
    "sensors.lastSeen": "Dernière mesure", "sensors.battery": "Batterie", "sensors.today": "Mesures du jour",
    "sensors.power": "Puissance", "sensors.online": "en ligne", "sensors.offline": "hors ligne",
    "sensors.never": "jamais", "sensors.simulated": "simulé",
    "settings.title": "Réglages",
    "settings.provider": "Fournisseur et tarif", "settings.providerPick": "Fournisseur",
    "settings.prices": "HP {day} €/kWh · HC {night} €/kWh · abonnement {sub} €/mois",
    "settings.night": "Heures creuses à partir d'aujourd'hui",
    "settings.nightHelp": "Une nouvelle version de votre tarif à partir d'aujourd'hui avec ces heures creuses ; les jours passés gardent les leurs. Pour plusieurs plages ou une autre date, ajoutez une version plus haut.",
    "tariff.title": "Votre tarif", "tariff.help": "Quel tarif s'applique à partir de quelle date. Un changement vaut à partir de sa date et ne recalcule jamais les jours passés.",
    "tariff.from": "À partir du", "tariff.tariff": "Tarif", "tariff.use": "Appliquer ce tarif à partir de cette date",
    "tariff.current": "en vigueur", "tariff.planned": "prévu", "tariff.none": "Aucun tarif choisi.",
    "tariff.used": "{name} à partir du {date}.",
    "tariff.versionsOf": "Versions de {name}", "tariff.versionFrom": "À partir du {date}", "tariff.inForce": "en vigueur aujourd'hui",
    "tariff.subscriptionIs": "Abonnement {euros} €/mois", "tariff.period": "Période",
    "tariff.windowsAre": "{list} ; {other} le reste de la journée", "tariff.allDay": "{period} toute la journée",
    "tariff.exportIs": "Énergie injectée payée {price} €/kWh", "tariff.deleteVersion": "Supprimer cette version",
    "tariff.newVersionOf": "Nouvelle version de {name}",
    "tariff.versionHelp": "Un changement de prix ou d'heures à partir d'une date : les jours passés gardent leur version.",
    "tariff.addVersion": "Ajouter cette version", "tariff.versionSaved": "Version du {date} enregistrée.",
    "tariff.own": "Saisir votre propre tarif", "tariff.name": "Nom du tarif",
    "tariff.applyOwn": "L'appliquer au foyer à partir de sa première date", "tariff.create": "Créer le tarif",
    "tariff.created": "Tarif « {name} » créé.",
    "tariff.validFrom": "Valable à partir du", "tariff.subscription": "Abonnement (€/mois)",
    "tariff.prices": "Périodes et leur prix (€/kWh)", "tariff.pricesTempo": "Périodes et leur prix selon la couleur du jour (€/kWh)",
    "tariff.periodsHelp": "La première période s'applique en dehors des plages ci-dessous.",
    "tariff.windows": "Plages horaires", "tariff.windowsHelp": "Début et fin à la minute près ; une fin avant le début passe minuit.",
    "tariff.exportPrice": "Énergie injectée payée (€/kWh, 0 si rien)",
    "tariff.addPeriod": "Ajouter une période", "tariff.addWindow": "Ajouter une plage",
    "tariff.periodN": "Nom de la période {n}", "tariff.priceN": "Prix de la période {n} (€/kWh)", "tariff.priceNColour": "Prix de la période {n}, {colour} (€/kWh)",
    "tariff.removePeriod": "Retirer la période {n}", "tariff.windowStart": "Début de la plage {n}", "tariff.windowEnd": "Fin de la plage {n}",
    "tariff.windowPeriod": "Période de la plage {n}", "tariff.removeWindow": "Retirer la plage {n}",
    "tariff.err.number": "{what} : il faut un prix de 0 ou plus.", "tariff.err.periodName": "Chaque période doit avoir un nom.",
    "tariff.err.periodTwice": "Deux périodes portent le même nom.", "tariff.err.date": "La date manque.",
    "tariff.err.window": "Chaque plage doit avoir un début et une fin.",
    "tariff.kind.base": "Base", "tariff.kind.hc": "heures pleines/creuses", "tariff.kind.tempo": "Tempo", "tariff.kind.custom": "personnel",
    "period.base": "Base", "period.peak": "Heures pleines", "period.offpeak": "Heures creuses",
    "tempo.title": "Jours Tempo", "tempo.help": "Les prix Tempo dépendent de la couleur du jour, annoncée la veille.",
    "tempo.today": "Aujourd'hui :", "tempo.tomorrow": "Demain :", "tempo.unknown": "pas encore connue",
    "tempo.day": "Jour", "tempo.colour": "Couleur", "tempo.saved": "{date} : {colour}.",
    "tempo.blue": "Jour bleu", "tempo.white": "Jour blanc", "tempo.red": "Jour rouge",
    "costs.assumed": "(supposé)", "costs.subscription": "Abonnement", "costs.includeSubscription": "avec l'abonnement",
    "costs.export": "Énergie injectée", "costs.part": "Poste", "costs.kwh": "kWh", "costs.price": "€/kWh", "costs.euros": "€",
    "costs.total": "Total", "costs.prorated": "au prorata de la période",
    "settings.nightNone": "Pas d'heures creuses", "settings.nightStart": "Début", "settings.nightEnd": "Fin",
    "settings.password": "Changer mon mot de passe", "settings.current": "Mot de passe actuel",
    "settings.new": "Nouveau mot de passe (8 caractères ou plus)", "settings.passwordDone": "Mot de passe changé.",
    "settings.radio": "Capteur radio CitizenWatt (nRF24)",
    "settings.radioHelp": "La clé AES et l'adresse programmées dans le capteur. Le collecteur les prend aussitôt.",
    "settings.radioSensor": "Identifiant du collecteur", "settings.radioKey": "Clé AES (32 chiffres hexadécimaux ou 0-1-…-15)",
    "settings.radioAddress": "Adresse (hexadécimal)", "settings.radioSaved": "Enregistré et envoyé au collecteur.",
    "settings.radioQueued": "Enregistré ; le collecteur le recevra au retour du broker.",
    "settings.radioKnown": "Configurés : {list}",
    // Charts' text alternative (charts.js) and the tariff editor's named rows (issue 13, accessibility).
    "chart.name": "Graphique : {series}{unit}", "chart.noData": "Pas encore de valeurs.",
    "chart.summaryAll": "{count} points de {first} à {last} ; le tableau qui suit les donne.",
    "chart.summaryRange": "{count} points de {first} à {last} ; le tableau qui suit donne la dernière valeur de chaque série, la plus basse et la plus haute.",
    "chart.when": "Quand", "chart.series": "Série", "chart.latest": "Dernière", "chart.lowest": "Minimum", "chart.highest": "Maximum",
    "tariff.periodRow": "Période {n}", "tariff.windowRow": "Plage {n}",
    "sensors.standby": "Veille", "sensors.energyToday": "Énergie du jour",
    "sensors.standbyHelp": "Veille : la puissance la plus basse tenue une heure la nuit (médiane des dernières nuits), et ce qu'elle coûte en un an à votre tarif.",
    "alerts.title": "Alertes", "alerts.perYear": "{euros} €/an",
    "alerts.silent": "{sensor} : aucune mesure depuis le {since}.",
    "alerts.silentPeriod": "{sensor} : aucune mesure depuis le {since} (une attendue toutes les {period} s).",
    "alerts.unusual": "{sensor} : {kwh} kWh entre {from} et {to}, d'habitude {usual} kWh le {weekday} à cette heure.",
    "alerts.standby": "{sensor} : veille de {watts} W, au-delà de {limit} W.",
    "alerts.standbyCost": "{sensor} : veille de {watts} W, environ {euros} € par an (au-delà de {limit} W).",
    "time.s": "il y a {n} s", "time.min": "il y a {n} min", "time.h": "il y a {n} h", "time.d": "il y a {n} j",
    // Les refus de l'api par code (services/api/citizenwatt_api/errors.py).
    "wait.s": "{n} s", "wait.min": "{n} min",
    "error.error": "Le serveur a rencontré un problème.", "error.invalid_parameters": "Paramètres invalides.",
    "error.invalid_parameters.field": "Valeur invalide pour « {field} ».",
    "error.authentication_required": "Veuillez vous connecter.", "error.forbidden": "Accès refusé.",
    "error.not_found": "Introuvable.", "error.method_not_allowed": "Cette action n'est pas permise ici.",
    "error.conflict": "Cela contredit ce qui est déjà enregistré.", "error.too_large": "Trop volumineux.",
    "error.too_many_requests": "Trop de demandes : réessayez dans un instant.",
    "error.unavailable": "Le serveur n'est pas disponible : réessayez dans un instant.",
    "error.database_unavailable": "La base de données n'est pas disponible : réessayez dans un instant.",
    "error.server_busy": "Le serveur est occupé : réessayez dans un instant.",
    "error.invalid_text": "Le texte contient des caractères impossibles à enregistrer.",
    "error.too_many_logins": "Trop d'échecs de connexion : réessayez dans {wait}.",
    "error.wrong_credentials": "Identifiant ou mot de passe incorrect.", "error.wrong_current_password": "Le mot de passe actuel est faux.",
    "error.password_too_short": "Le nouveau mot de passe doit avoir au moins {min_length} caractères.",
    "error.login_and_password_needed": "Il faut un identifiant et un mot de passe d'au moins {min_length} caractères.",
    "error.already_installed": "Déjà installé : connectez-vous.",
    "error.cross_site_refused": "Refusé : cette demande ne vient pas de la page de CitizenWatt.",
    "error.unknown_token": "Jeton d'API inconnu ou révoqué.", "error.admin_only": "Réservé à un administrateur.",
    "error.invalid_token_name": "Un nom de jeton de 1 à 100 caractères, s'il vous plaît.", "error.no_active_token": "Aucun jeton actif {token}.",
    "error.body_not_json": "La demande n'est pas du JSON valide.",
    "error.invalid_sensor": "Choix de capteur inconnu.", "error.unknown_sensor": "Il n'y a pas de capteur {sensor}.",
    "error.unknown_time_zone": "Fuseau horaire inconnu « {zone} ».", "error.outside_calendar": "Cette date est hors du calendrier.",
    "error.end_before_start": "La fin doit être le jour du début ou après.",
    "error.range_too_long": "Au plus {max_days} jours par fichier : exportez la suite dans un autre.",
    "error.bucket_not_allowed": "Cette période ne se découpe pas ainsi (possible : {allowed}).",
    "error.invalid_comparison": "« {value} » n'est pas une comparaison.", "error.invalid_since": "Heure de début invalide.",
    "error.too_many_values": "Trop de valeurs : au plus {limit}.", "error.too_many_buckets": "Trop de barres : au plus {limit}.",
    "error.unknown_provider": "Il n'y a pas de fournisseur {provider}.", "error.invalid_provider": "Choix de fournisseur inconnu.",
    "error.invalid_night_window": "Heures creuses refusées : {detail}.",
    "error.invalid_radio_config": "Clé AES ou adresse refusée : {detail}.",
    "error.invalid_tariff_version": "La version du {valid_from} est refusée : {detail}.",
    "error.unknown_tariff": "Il n'y a pas de tarif {tariff}.", "error.tariff_name_taken": "Un tarif « {name} » existe déjà.",
    "error.version_without_date": "Chaque version doit avoir sa date de début.",
    "error.duplicate_version_date": "Deux versions commencent le même jour.",
    "error.version_date_mismatch": "La date de la version diffère de celle demandée.",
    "error.unknown_version": "Ce tarif n'a pas de version du {valid_from}.",
    "error.last_version": "Un tarif garde au moins une version.",
    "error.tempo_range": "La fin doit être le jour du début ou après, au plus {max_days} jours plus tard.",
    "error.invalid_colour": "Couleur inconnue (possibles : {colours}).",
    // Mesures mises de côté pour une heure impossible (vue capteurs, services/ui/js/quarantine.js).
    "quarantine.title": "Mesures mises de côté",
    "quarantine.intro": "Ces mesures portent une heure qui ne peut pas être juste : l'horloge d'un collecteur a reculé, ou avance sur celle de ce serveur. Elles sont gardées, mais ne comptent dans aucune énergie ni aucun chiffre tant qu'un administrateur ne les a pas libérées (enregistrées à l'heure qu'elles portent) ou supprimées.",
    "quarantine.sensor": "Capteur", "quarantine.stamped": "Datée", "quarantine.power": "Puissance",
    "quarantine.reason": "Pourquoi", "quarantine.received": "Reçue", "quarantine.actions": "Actions",
    "quarantine.future": "Datée dans le futur", "quarantine.timeBack": "L'horloge a reculé",
    "quarantine.release": "Libérer", "quarantine.delete": "Supprimer",
    "quarantine.releaseLabel": "Libérer la mesure de {sensor} datée {time}", "quarantine.deleteLabel": "Supprimer la mesure de {sensor} datée {time}",
    "quarantine.released": "Mesure enregistrée à {time}.", "quarantine.duplicate": "Cette mesure était déjà enregistrée ; elle sort de la liste.",
    "quarantine.deleted": "Mesure supprimée.", "quarantine.more": "Les {shown} plus récentes sur {total}.",
    "error.unknown_quarantined_reading": "Aucune mesure {id} mise de côté (déjà libérée ou supprimée ?).",
    "error.quarantine_conflict": "La mesure {id} reste de côté : une autre mesure de son capteur, aux valeurs différentes, est enregistrée au même instant.",
    "error.quarantine_in_future": "La mesure {id} est encore datée dans le futur : libérez-la une fois son heure venue, ou supprimez-la.",
    "history.hour": "{h} h", "history.badDate": "Cette date n'existe pas : {date}.",
    "history.periods": "Période", "history.units": "Unité",
    "history.pickDay": "Jour du mois", "history.pickMonth": "Mois", "history.pickYear": "Année",
  },
};

export const LANGUAGES = Object.keys(TEXTS);

function initialLanguage() {
  const saved = localStorage.getItem("cw.lang");
  if (saved && TEXTS[saved]) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("fr") ? "fr" : "en";
}

let language = initialLanguage();

export function currentLanguage() {
  return language;
}

/** The locale for dates and numbers: the browser's own when it speaks the chosen language (en-GB, fr-CA). */
export function currentLocale() {
  const browser = navigator.language || language;
  return browser.toLowerCase().startsWith(language) ? browser : language;
}

export function setLanguage(lang) {
  if (!TEXTS[lang]) return;
  language = lang;
  localStorage.setItem("cw.lang", lang);
  // Also a cookie: the server-rendered /login and /install pages speak it too (a year, this site only).
  document.cookie = `cw_lang=${lang}; path=/; max-age=31536000; SameSite=Lax`;
  document.documentElement.lang = lang;
}

/** A wait in seconds as people say it: seconds under a minute, else whole minutes rounded up. */
export function waitText(seconds) {
  const s = Math.max(1, Math.ceil(Number(seconds)));
  return s < 60 ? t("wait.s", { n: s }) : t("wait.min", { n: Math.ceil(s / 60) });
}

/**
 * An api refusal in the page's language, by its stable code (errors.py) and params; a code this
 * page has no words for keeps the server's English text. A named field gets the precise message.
 */
export function errorText(code, params, english) {
  const key = `error.${code}`;
  if (!code || TEXTS[language][key] === undefined) return english;
  const values = { ...(params ?? {}) };
  if (values.retry_after !== undefined) values.wait = waitText(values.retry_after);
  const precise = values.field !== undefined && TEXTS[language][`${key}.field`] !== undefined;
  return t(precise ? `${key}.field` : key, values);
}

/** The text for `key` in the current language, with {name} placeholders filled from `values`. */
/** Energy each way and net, for a sensor that exports (negative power: solar panels). */
export function flowsText(importKwh, exportKwh, netKwh) {
  return t("energy.flows", { in: number(importKwh, 2), out: number(exportKwh, 2), net: number(netKwh, 2) });
}

export function t(key, values = {}) {
  const text = TEXTS[language][key] ?? TEXTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

/** Fill every element carrying data-i18n (text) or data-i18n-label (aria-label) under `root`. */
export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}

/** A YYYY-MM-DD date in words in the page's language ("jeudi 16 janvier 2025"); "" if it is none. */
export function longDate(isoDate) {
  const date = new Date(`${isoDate}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(isoDate ?? "") || Number.isNaN(date.getTime())) return "";
  const words = { weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: "UTC" };
  return new Intl.DateTimeFormat(currentLocale(), words).format(date);
}

export function number(value, digits) {
  return new Intl.NumberFormat(currentLocale(), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
}

export function ago(seconds) {
  if (seconds < 60) return t("time.s", { n: Math.max(0, Math.round(seconds)) });
  if (seconds < 3600) return t("time.min", { n: Math.round(seconds / 60) });
  if (seconds < 86400) return t("time.h", { n: Math.round(seconds / 3600) });
  return t("time.d", { n: Math.round(seconds / 86400) });
}
